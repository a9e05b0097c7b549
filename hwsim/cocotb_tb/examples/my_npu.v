// my_npu: the worked example of docs/cosim.md — "your" accelerator, with its own port names,
// an active-low reset and no accumulator port. (Inside it is the reference accelerator, so the
// example passes; a real design would have its own datapath behind the same kind of ports.)
`default_nettype none
`include "hwsim_params.vh"
module my_npu (
    input  wire        aclk,
    input  wire        aresetn,
    input  wire        go,            // pulse: run layer `layer_id`
    input  wire [15:0] layer_id,
    input  wire [7:0]  mode,          // bit 0 load inputs, bit 1 stream the output
    output wire        finished,
    output wire [7:0]  fault,
    output wire [7:0]  opcode,
    output wire [31:0] perf_cycles,
    output wire [31:0] perf_total,
    input  wire [63:0] act_in_tdata,
    input  wire        act_in_tvalid,
    output wire        act_in_tready,
    input  wire        act_in_tlast,
    output wire [63:0] res_out_tdata,
    output wire        res_out_tvalid,
    input  wire        res_out_tready,
    output wire        res_out_tlast
);
    /* verilator lint_off UNUSEDSIGNAL */
    wire busy;
    wire [`HWSIM_COLS*64-1:0] acc_tdata;
    wire [47:0] acc_tuser;
    wire acc_tvalid, acc_tlast;
    /* verilator lint_on UNUSEDSIGNAL */
    hwsim_accel core (
        .clk(aclk), .rst(!aresetn),
        .cmd_start(go), .cmd_layer(layer_id), .cmd_flags({6'd0, mode[1:0]}),
        .sts_busy(busy), .sts_done(finished), .sts_error(fault), .sts_op(opcode),
        .sts_cycles(perf_cycles), .sts_total_cycles(perf_total),
        .s_axis_tdata(act_in_tdata), .s_axis_tvalid(act_in_tvalid),
        .s_axis_tready(act_in_tready), .s_axis_tlast(act_in_tlast),
        .m_axis_tdata(res_out_tdata), .m_axis_tvalid(res_out_tvalid),
        .m_axis_tready(res_out_tready), .m_axis_tlast(res_out_tlast),
        .m_axis_acc_tdata(acc_tdata), .m_axis_acc_tuser(acc_tuser),
        .m_axis_acc_tvalid(acc_tvalid), .m_axis_acc_tready(1'b1), .m_axis_acc_tlast(acc_tlast));
endmodule
`default_nettype wire
