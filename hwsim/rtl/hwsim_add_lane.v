// hwsim_add_lane: TFLite's integer ADD, SUB or MUL for one element, int8 or int16 (ADD/SUB:
// the general int16 path; reference_integer_ops/add.h, sub.h, mul.h, hwsim
// kernels/elementwise.py _add_sub_one and _mul):
//   ADD, SUB (op 0, 1):
//     x1 = (a + input1_offset) << left_shift        (int32)
//     y1 = MBQM(x1, input1_multiplier, input1_shift) (same for b)
//     out = clamp(MBQM(y1 +- y2, output_multiplier, output_shift) + output_offset, act_min, act_max)
//   MUL (op 2):
//     out = clamp(MBQM((a + input1_offset) * (b + input2_offset), output_multiplier,
//                      output_shift) + output_offset, act_min, act_max)   (int32 product)
// MBQM is the double- or single-rounding MultiplyByQuantizedMultiplier (`single`). Combinational.
`default_nettype none
module hwsim_add_lane #(
    parameter IN_BITS = 8,
    parameter IN_SIGNED = 1,     // 0: a, b are unsigned
    parameter OUT_BITS = 8
) (
    input  wire [IN_BITS-1:0]         a,
    input  wire [IN_BITS-1:0]         b,
    input  wire [1:0]                 op,      // 0 ADD, 1 SUB, 2 MUL
    input  wire signed [31:0]         input1_offset,
    input  wire signed [31:0]         input2_offset,
    input  wire [4:0]                 left_shift,
    input  wire signed [31:0]         input1_multiplier,
    input  wire signed [7:0]          input1_shift,
    input  wire signed [31:0]         input2_multiplier,
    input  wire signed [7:0]          input2_shift,
    input  wire signed [31:0]         output_multiplier,
    input  wire signed [7:0]          output_shift,
    input  wire                       single,
    input  wire signed [31:0]         output_offset,
    input  wire signed [31:0]         act_min,
    input  wire signed [31:0]         act_max,
    output wire signed [OUT_BITS-1:0] out
);
`include "hwsim_arith.vh"
    wire sa = IN_SIGNED != 0 && a[IN_BITS-1];
    wire sb = IN_SIGNED != 0 && b[IN_BITS-1];
    wire signed [31:0] a1 = $signed({{(32 - IN_BITS){sa}}, a}) + input1_offset;
    wire signed [31:0] b1 = $signed({{(32 - IN_BITS){sb}}, b}) + input2_offset;
    wire signed [31:0] x1 = a1 << left_shift;
    wire signed [31:0] x2 = b1 << left_shift;
    wire signed [31:0] prod = a1 * b1;           // int32 product (wraps, as in C++)
    wire signed [31:0] y1 = single ? f_mbqm_single(x1, input1_multiplier, input1_shift)
                                   : f_mbqm_double(x1, input1_multiplier, input1_shift);
    wire signed [31:0] y2 = single ? f_mbqm_single(x2, input2_multiplier, input2_shift)
                                   : f_mbqm_double(x2, input2_multiplier, input2_shift);
    wire signed [31:0] raw = (op == 2'd2) ? prod : ((op == 2'd1) ? y1 - y2 : y1 + y2);
    wire signed [31:0] scaled = single ? f_mbqm_single(raw, output_multiplier, output_shift)
                                       : f_mbqm_double(raw, output_multiplier, output_shift);
    /* verilator lint_off UNUSEDSIGNAL */  // 32-bit index arithmetic, sliced to widths
    wire signed [33:0] biased = {{2{scaled[31]}}, scaled} + {{2{output_offset[31]}}, output_offset};
    wire signed [33:0] lo = {{2{act_min[31]}}, act_min};
    wire signed [33:0] hi = {{2{act_max[31]}}, act_max};
    wire signed [33:0] clamped = (biased < lo) ? lo : ((biased > hi) ? hi : biased);
    assign out = clamped[OUT_BITS-1:0];
    /* verilator lint_on UNUSEDSIGNAL */
endmodule
`default_nettype wire
