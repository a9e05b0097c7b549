// hwsim_pe: one processing element of the output-stationary array: an accumulator register
// with the accumulator model of the config (ACC_BITS, wrap or saturate on every addition).
//   load      acc <= ovf(init)               (init = the bias when BIAS_FIRST, else 0)
//   mac       acc <= ovf(acc + x * w)        (one product per cycle, in (ky, kx, ic) order)
//   add_bias  acc <= ovf(acc + bias)         (bias added last when BIAS_FIRST = 0)
// Fault injection (tests only): `define HWSIM_FAULT_NARROW_ACC makes the accumulator 16 bits
// (wrapping), sign-extended to ACC_BITS.
`default_nettype none
module hwsim_pe #(
    parameter XW = 9,          // x + input_offset (INPUT_BITS + 1 bits)
    parameter WB = 8,          // weight bits
    parameter ACC_BITS = 32,
    parameter SATURATE = 0
) (
    input  wire                       clk,
    input  wire                       load,
    input  wire                       mac,
    input  wire                       add_bias,
    input  wire signed [31:0]         init,
    input  wire signed [31:0]         bias,
    input  wire signed [XW-1:0]       x,
    input  wire signed [WB-1:0]       w,
    output reg  signed [ACC_BITS-1:0] acc
);
`ifdef HWSIM_FAULT_NARROW_ACC
    localparam EB = 16;
`else
    localparam EB = ACC_BITS;
`endif
    localparam signed [65:0] EMAX = (66'sd1 <<< (EB - 1)) - 66'sd1;
    localparam signed [65:0] EMIN = -(66'sd1 <<< (EB - 1));

    wire signed [XW+WB-1:0] prod = x * w;
    wire signed [65:0] acc_x = {{(66 - ACC_BITS){acc[ACC_BITS-1]}}, acc};
    wire signed [65:0] addend = load ? {{34{init[31]}}, init}
                              : (mac ? {{(66 - XW - WB){prod[XW+WB-1]}}, prod}
                                     : {{34{bias[31]}}, bias});
    wire signed [65:0] sum = (load ? 66'sd0 : acc_x) + addend;
    wire signed [65:0] wrapped = {{(66 - EB){sum[EB-1]}}, sum[EB-1:0]};
    wire signed [65:0] ovf = SATURATE ? ((sum > EMAX) ? EMAX : ((sum < EMIN) ? EMIN : sum))
                                      : wrapped;

    initial acc = {ACC_BITS{1'b0}};
    always @(posedge clk)
        if (load || mac || add_bias) acc <= ovf[ACC_BITS-1:0];
endmodule
`default_nettype wire
