// hwsim_requant: accumulator -> output activation (hwsim/kernels/requant.py, requant_one):
//   out = clamp(requant(acc, word) + output_offset, act_min, act_max)
// scheme (descriptor field 33) selects how the requant word is read:
//   0 tflite_double  MultiplyByQuantizedMultiplier(int32 acc, M = word[31:0], shift = word[39:32])
//   1 tflite_single  the TFLITE_SINGLE_ROUNDING variant of the same
//   2 tflite_int64   the 16x8 kernels' MultiplyByQuantizedMultiplier(int64 acc, M, shift)
//   3 mult_shift     round_shift(acc * word[31:0], word[39:32] (right), rounding)
//   4 shift_only     round_shift(acc, word[39:32] (right), rounding)
//   5 double_round   int(round(double(acc) * M * 2^E)), M = word[52:0], E = word[63:53]
//   6 float32        rint(float32(acc) * float32 scale), scale = word[31:0] (IEEE bits), the
//                    product clipped to +-2^40 (ONNX Runtime's MlasRequantizeOutput)
// ACC_BITS is the accumulator width (up to 64); OUT_BITS the output width (the clamp range
// [act_min, act_max] lies inside it). Purely combinational.
`default_nettype none
module hwsim_requant #(
    parameter ACC_BITS = 32,
    parameter OUT_BITS = 8
) (
    input  wire signed [ACC_BITS-1:0] acc,
    input  wire [63:0]                word,
    input  wire [2:0]                 scheme,
    input  wire [2:0]                 rounding,
    input  wire signed [31:0]         output_offset,
    input  wire signed [31:0]         act_min,
    input  wire signed [31:0]         act_max,
    output wire signed [OUT_BITS-1:0] out
);
`include "hwsim_arith.vh"
    /* verilator lint_off UNUSEDSIGNAL */  // bit 64: the extension is one bit wider than needed
    wire signed [64:0]  acc65 = {{(65 - ACC_BITS){acc[ACC_BITS-1]}}, acc};  // ACC_BITS <= 64
    /* verilator lint_on UNUSEDSIGNAL */
    wire signed [63:0]  acc64 = acc65[63:0];
    wire signed [31:0]  acc32 = acc64[31:0];  // TFLite's int32 accumulator
    wire signed [31:0]  mult = word[31:0];
    wire signed [7:0]   shift = word[39:32];
    wire signed [127:0] acc128 = {{64{acc64[63]}}, acc64};
    wire signed [127:0] mult128 = {{96{mult[31]}}, mult};

    localparam signed [127:0] I32_MAX = 128'sh7fffffff;
    localparam signed [127:0] I32_MIN = -128'sh80000000;
    reg signed [127:0] scaled;
    reg signed [127:0] d5;
    reg signed [31:0] r32;
    always @* begin
        r32 = 32'sd0;
        d5 = 128'sd0;
        case (scheme)
            3'd0: begin
                r32 = f_mbqm_double(acc32, mult, shift);
                scaled = {{96{r32[31]}}, r32};
            end
            3'd1: begin
                r32 = f_mbqm_single(acc32, mult, shift);
                scaled = {{96{r32[31]}}, r32};
            end
            3'd2: begin
                r32 = f_mbqm_int64(acc64, mult, shift);
                scaled = {{96{r32[31]}}, r32};
            end
            3'd3: scaled = f_round_shift(acc128 * mult128, word[38:32], rounding);
            3'd4: scaled = f_round_shift(acc128, word[38:32], rounding);
            3'd5: begin
                // static_cast<int32_t>(round(...)): out of int32 gives INT32_MIN (x86 cvttsd2si)
                d5 = f_double_round(acc64, word);
                r32 = (d5 > I32_MAX || d5 < I32_MIN) ? 32'sh80000000 : d5[31:0];
                scaled = {{96{r32[31]}}, r32};
            end
            3'd6: scaled = f_float32_round(acc64, word);  // + offset, clamp: no int32 wrap
            default: scaled = 128'sd0;
        endcase
    end
    /* verilator lint_off UNUSEDSIGNAL */  // 32-bit index arithmetic, sliced to widths
    // TFLite schemes (0, 1, 2, 5) add the offset to an int32: `acc += output_offset` wraps
    wire               tfl = (scheme <= 3'd2) || (scheme == 3'd5);
    wire signed [31:0] b32 = r32 + output_offset;
    wire signed [127:0] biased = tfl ? {{96{b32[31]}}, b32}
                                     : scaled + {{96{output_offset[31]}}, output_offset};
    wire signed [127:0] lo = {{96{act_min[31]}}, act_min};
    wire signed [127:0] hi = {{96{act_max[31]}}, act_max};
    wire signed [127:0] clamped = (biased < lo) ? lo : ((biased > hi) ? hi : biased);
    assign out = clamped[OUT_BITS-1:0];
    /* verilator lint_on UNUSEDSIGNAL */
endmodule
`default_nettype wire
