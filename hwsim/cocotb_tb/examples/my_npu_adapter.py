"""Adapter of the worked example in docs/cosim.md: the bench drives `my_npu` (my_npu.v).

Same protocol as the reference accelerator (command pulse, done, AXI4-Stream in/out), other
names: only class attributes change. Run it with

    RTL=$(hwsim rtl-params --rtl-dir)
    EXAMPLES=$(hwsim rtl-params --bench-dir)/examples
    hwsim cosim rtl_vectors/example --rtl "$RTL"/*.v "$EXAMPLES"/my_npu.v \\
        --include "$RTL" --toplevel my_npu --adapter my_npu_adapter:MyNpuAdapter \\
        --tb-path "$EXAMPLES"
"""
from hwsim_adapter import HwsimAccelAdapter


class MyNpuAdapter(HwsimAccelAdapter):
    clock = "aclk"
    clock_period_ns = 10
    reset = "aresetn"
    reset_active_high = False
    cmd_start = "go"
    cmd_layer = "layer_id"
    cmd_flags = "mode"             # bit 0 load inputs, bit 1 stream the output
    sts_done = "finished"
    sts_error = "fault"
    sts_op = "opcode"
    sts_cycles = "perf_cycles"
    sts_total_cycles = "perf_total"
    s_axis = "act_in"              # act_in_tdata, act_in_tvalid, act_in_tready, act_in_tlast
    m_axis = "res_out"
    m_axis_acc = None              # no accumulator port: outputs are compared, accumulators not
