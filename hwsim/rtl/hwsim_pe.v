// hwsim_pe: one PE step of the accumulator model as a combinational module (hwsim_acc.vh), for
// the unit bench (hwsim/cocotb_tb/hwsim_unit_bench.py); the MAC array applies the same function
// to all its PEs in one loop.
`default_nettype none
module hwsim_pe #(
    parameter ACC_BITS = 32,
    parameter SATURATE = 0,
    parameter BIAS_FIRST = 1,
    parameter WEIGHT_STATIONARY = 0,
    parameter PROD_BITS = 17,
    parameter BIAS_BITS = 32
) (
    input  wire signed [ACC_BITS-1:0]  acc,
    input  wire signed [ACC_BITS-1:0]  s,
    input  wire signed [PROD_BITS-1:0] p,
    input  wire signed [BIAS_BITS-1:0] bias,
    input  wire                        kfirst,
    input  wire                        klast,
    input  wire                        cfirst,
    input  wire                        clast,
    output wire signed [ACC_BITS-1:0]  acc_out,
    output wire signed [ACC_BITS-1:0]  s_out
);
    localparam ACC_SAT = SATURATE;
    localparam WS = WEIGHT_STATIONARY;
    localparam PW = PROD_BITS;
    localparam BW = BIAS_BITS;
    localparam SW0 = (ACC_BITS > PW) ? ACC_BITS : PW;
    localparam SW = ((SW0 > BW) ? SW0 : BW) + 2;
`include "hwsim_acc.vh"
    assign {s_out, acc_out} = f_pe_step(acc, s, p, bias, kfirst, klast, cfirst, clast);
endmodule
`default_nettype wire
