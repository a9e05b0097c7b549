// hwsim_accel: the reference accelerator of hwsim (top level). See docs/cosim.md.
//
//            +---------------- hwsim_accel -----------------------------------------------+
//  cmd_* --->| controller: fetch descriptor -> [load inputs] -> run engine -> [stream out]  |
//  sts_* <---|   |                                                                       |
//  s_axis -->|---+--> activation RAM (hwsim_act_ram: ACT_LANES lanes of ACT_ELEM_BITS)   |
//            |            ^   |                                                          |
//            |            |   +--> hwsim_mac_engine (CONV/DWCONV/FC): hwsim_gather,      |
//            |            |   |      hwsim_wfeed, ROWSxCOLS systolic hwsim_mac_array,   |
//            |            |   |      hwsim_drain (COLS x hwsim_requant), vector writer  |
//            |            |   |      ---> m_axis_acc                                      |
//            |            |   +--> hwsim_elem_engine (ADD / SUB / MUL / TABLE (hwsim_lut) |
//            |            |   |      / MAXPOOL / AVGPOOL / MEAN)                          |
//  m_axis <--|------------+ (output region, read back after the layer)                   |
//            |  ROMs ($readmemh at time 0): weights, bias, requant, descriptors          |
//            +---------------------------------------------------------------------------+
//
// Command interface (one layer per command):
//   cmd_start (1-cycle pulse) with cmd_layer = descriptor index and cmd_flags:
//     bit 0  load the layer's input(s) from s_axis into the activation memory first (ADD,
//            SUB, MUL: two frames, input 1 then input 2; each ceil(elements / ACT_LANES) words, tlast
//            on the last word); 0: use the memory as the previous layers left it
//     bit 1  stream the output region on m_axis after the layer (tlast on the last word)
//     bit 2  send the accumulators on m_axis_acc (MAC layers): one beat per drained row,
//            tdata = COLS accumulators sign-extended to 64 bits (lane j at [64j +: 64]),
//            tuser = {valid lanes [47:32], flat NHWC index of lane 0 [31:0]}
//     bit 3  (simulation only) write the accumulators to the trace file +HWSIM_TRACE_ACC=
//            and, after the layer, the output region to +HWSIM_TRACE_OUT= (one hex word a line)
//     bit 4  (simulation only) load the input(s) from +HWSIM_TRACE_IN1= / +HWSIM_TRACE_IN2=
//            ($readmemh, no cycles) instead of s_axis
//   sts_busy, sts_done (set when the command ends, cleared by the next cmd_start),
//   sts_op = the descriptor's op (0: the end descriptor, nothing was run),
//   sts_error bit 0 unsupported op, bit 1 layer exceeds an RTL limit, bit 2 input stream
//   length mismatch (tlast), sts_cycles = cycles of the layer's engine (start to done: what the
//   dataflow model estimates), sts_total_cycles = all cycles of the command (descriptor fetch,
//   input load, engine, output stream).
// Memory files by plusargs: +HWSIM_WEIGHTS=, +HWSIM_BIAS=, +HWSIM_REQUANT=, +HWSIM_DESCRIPTORS=
// (each with an optional +<NAME>_WORDS=<count>).
`default_nettype none
`include "hwsim_params.vh"
`include "hwsim_desc.vh"
module hwsim_accel #(
    parameter ROWS = `HWSIM_ROWS,
    parameter COLS = `HWSIM_COLS,
    parameter WEIGHT_STATIONARY = 1 - `HWSIM_DATAFLOW_OUTPUT_STATIONARY,
    parameter IN_BITS = `HWSIM_INPUT_BITS,
    parameter IN_SIGNED = `HWSIM_INPUT_SIGNED,
    parameter W_BITS = `HWSIM_WEIGHT_BITS,
    parameter W_SIGNED = `HWSIM_WEIGHT_SIGNED,
    parameter OUT_BITS = `HWSIM_OUTPUT_BITS,
    parameter OUT_SIGNED = `HWSIM_OUTPUT_SIGNED,
    parameter ACC_BITS = `HWSIM_ACC_BITS,
    parameter ACC_SATURATE = `HWSIM_ACC_SATURATE,
    parameter BIAS_FIRST = `HWSIM_BIAS_FIRST,
    parameter ACT_W = `HWSIM_ACT_WORD_BITS,
    parameter ACT_L = `HWSIM_ACT_LANES,
    parameter ACT_EB = `HWSIM_ACT_ELEM_BITS,
    parameter ACT_LOG2L = `HWSIM_ACT_LOG2_LANES,
    parameter ACT_MSB_FIRST = `HWSIM_ACT_LANE_MSB_FIRST,
    parameter ACT_DEPTH = `HWSIM_ACT_DEPTH,
    parameter ACT_AW = `HWSIM_ACT_ADDR_BITS,
    parameter WGT_W = `HWSIM_WGT_WORD_BITS,
    parameter WGT_L = `HWSIM_WGT_LANES,
    parameter WGT_EB = `HWSIM_WGT_ELEM_BITS,
    parameter WGT_MSB_FIRST = `HWSIM_WGT_LANE_MSB_FIRST,
    parameter WGT_DEPTH = `HWSIM_WGT_DEPTH,
    parameter WGT_AW = `HWSIM_WGT_ADDR_BITS,
    parameter BIAS_W = `HWSIM_BIAS_WORD_BITS,
    parameter BIAS_EB = `HWSIM_BIAS_ELEM_BITS,
    parameter BIAS_DEPTH = `HWSIM_BIAS_DEPTH,
    parameter BIAS_AW = `HWSIM_BIAS_ADDR_BITS,
    parameter RQ_W = `HWSIM_RQ_WORD_BITS,
    parameter RQ_DEPTH = `HWSIM_RQ_DEPTH,
    parameter RQ_AW = `HWSIM_RQ_ADDR_BITS,
    parameter DESC_WORDS = `HWSIM_DESC_WORDS,
    parameter DESC_DEPTH = `HWSIM_DESC_DEPTH,
    parameter DESC_AW = `HWSIM_DESC_ADDR_BITS,
    parameter XBUF_DEPTH = `HWSIM_XBUF_DEPTH
) (
    input  wire             clk,
    input  wire             rst,
    // command / status
    input  wire             cmd_start,
    input  wire [15:0]      cmd_layer,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [7:0]       cmd_flags,         // bits 7:5 reserved
    /* verilator lint_on UNUSEDSIGNAL */
    output reg              sts_busy,
    output reg              sts_done,
    output reg  [7:0]       sts_error,
    output reg  [7:0]       sts_op,
    output reg  [31:0]      sts_cycles,
    output reg  [31:0]      sts_total_cycles,
    // activations in
    input  wire [ACT_W-1:0] s_axis_tdata,
    input  wire             s_axis_tvalid,
    output wire             s_axis_tready,
    input  wire             s_axis_tlast,
    // results out
    output wire [ACT_W-1:0] m_axis_tdata,
    output wire             m_axis_tvalid,
    input  wire             m_axis_tready,
    output wire             m_axis_tlast,
    // accumulators out (debug)
    output wire [COLS*64-1:0] m_axis_acc_tdata,
    output wire [47:0]      m_axis_acc_tuser,
    output wire             m_axis_acc_tvalid,
    input  wire             m_axis_acc_tready,
    output wire             m_axis_acc_tlast
);
    localparam DU = `HWSIM_DESC_USED;

    // ---- memories -------------------------------------------------------------------------
    reg               ram_re;
    reg  [ACT_AW-1:0] ram_raddr;
    wire [ACT_W-1:0]  ram_rdata;
    reg               ram_we;
    reg  [ACT_AW-1:0] ram_waddr;
    reg  [ACT_W-1:0]  ram_wdata;
    reg  [ACT_L-1:0]  ram_wmask;
    hwsim_act_ram #(.WIDTH(ACT_W), .LANES(ACT_L), .ELEM_BITS(ACT_EB), .DEPTH(ACT_DEPTH),
                    .AW(ACT_AW)) act_ram (
        .clk(clk), .re(ram_re), .raddr(ram_raddr), .rdata(ram_rdata), .we(ram_we),
        .waddr(ram_waddr), .wdata(ram_wdata), .wmask(ram_wmask));

    // the weight memory's one read port: the MAC engine's weight feeder, or the element
    // engine loading a TABLE layer's table (never both: one engine runs at a time)
    wire              mac_wgt_re, elem_wgt_re;
    wire [WGT_AW-1:0] mac_wgt_raddr, elem_wgt_raddr;
    wire              wgt_re = mac_wgt_re || elem_wgt_re;
    wire [WGT_AW-1:0] wgt_raddr = elem_wgt_re ? elem_wgt_raddr : mac_wgt_raddr;
    wire [WGT_W-1:0]  wgt_rdata;
    hwsim_rom #(.WIDTH(WGT_W), .DEPTH(WGT_DEPTH), .AW(WGT_AW), .PLUSARG("HWSIM_WEIGHTS"))
        wgt_rom (.clk(clk), .re(wgt_re), .addr(wgt_raddr), .rdata(wgt_rdata));
    wire               bias_re;
    wire [BIAS_AW-1:0] bias_raddr;
    wire [BIAS_W-1:0]  bias_rdata;
    hwsim_rom #(.WIDTH(BIAS_W), .DEPTH(BIAS_DEPTH), .AW(BIAS_AW), .PLUSARG("HWSIM_BIAS"))
        bias_rom (.clk(clk), .re(bias_re), .addr(bias_raddr), .rdata(bias_rdata));
    reg              rq_re;
    reg  [RQ_AW-1:0] rq_raddr;
    wire [RQ_W-1:0]  rq_rdata;
    hwsim_rom #(.WIDTH(RQ_W), .DEPTH(RQ_DEPTH), .AW(RQ_AW), .PLUSARG("HWSIM_REQUANT"))
        rq_rom (.clk(clk), .re(rq_re), .addr(rq_raddr), .rdata(rq_rdata));
    reg                desc_re;
    reg  [DESC_AW-1:0] desc_raddr;
    wire [31:0]        desc_rdata;
    hwsim_rom #(.WIDTH(32), .DEPTH(DESC_DEPTH), .AW(DESC_AW), .PLUSARG("HWSIM_DESCRIPTORS"))
        desc_rom (.clk(clk), .re(desc_re), .addr(desc_raddr), .rdata(desc_rdata));

    // ---- descriptor of the current layer --------------------------------------------------------
    reg [DU*32-1:0] desc;
    reg [RQ_W-1:0]  rq0;
    /* verilator lint_off UNUSEDSIGNAL */
    wire signed [31:0] d_op       = `HWSIM_DF(desc, `HWSIM_D_OP);
    wire signed [31:0] d_in_h     = `HWSIM_DF(desc, `HWSIM_D_IN_H);
    wire signed [31:0] d_in_w     = `HWSIM_DF(desc, `HWSIM_D_IN_W);
    wire signed [31:0] d_in_c     = `HWSIM_DF(desc, `HWSIM_D_IN_C);
    wire signed [31:0] d_out_h    = `HWSIM_DF(desc, `HWSIM_D_OUT_H);
    wire signed [31:0] d_out_w    = `HWSIM_DF(desc, `HWSIM_D_OUT_W);
    wire signed [31:0] d_out_c    = `HWSIM_DF(desc, `HWSIM_D_OUT_C);
    wire signed [31:0] d_in_base  = `HWSIM_DF(desc, `HWSIM_D_IN_BASE);
    wire signed [31:0] d_in2_base = `HWSIM_DF(desc, `HWSIM_D_IN2_BASE);
    wire signed [31:0] d_out_base = `HWSIM_DF(desc, `HWSIM_D_OUT_BASE);
    wire signed [31:0] d_rq_base  = `HWSIM_DF(desc, `HWSIM_D_RQ_BASE);
    wire signed [31:0] d_batch    = `HWSIM_DF(desc, `HWSIM_D_BATCH);
    /* verilator lint_on UNUSEDSIGNAL */
    wire is_mac_op = d_op == `HWSIM_OP_CONV || d_op == `HWSIM_OP_DWCONV || d_op == `HWSIM_OP_FC;
    wire is_elem_op = d_op == `HWSIM_OP_MAXPOOL || d_op == `HWSIM_OP_AVGPOOL
                      || d_op == `HWSIM_OP_ADD || d_op == `HWSIM_OP_SUB
                      || d_op == `HWSIM_OP_MUL || d_op == `HWSIM_OP_TABLE
                      || d_op == `HWSIM_OP_MEAN || d_op == `HWSIM_OP_RESIZE;
    wire is_two_in = d_op == `HWSIM_OP_ADD || d_op == `HWSIM_OP_SUB || d_op == `HWSIM_OP_MUL;
    wire is_fc = d_op == `HWSIM_OP_FC;
    wire signed [31:0] n_in = is_fc ? d_batch * d_in_c : d_batch * d_in_h * d_in_w * d_in_c;
    // out_pix_stride != 0 (a CONCATENATION alias along C): the words from out_base span the
    // pixels, pixel p's channels at element p * stride (hwsim_drain.v)
    wire signed [31:0] d_out_ps   = `HWSIM_DF(desc, `HWSIM_D_OUT_PSTRIDE);
    wire signed [31:0] n_out = is_fc ? d_batch * d_out_c : (d_out_ps != 32'sd0)
        ? (d_batch * d_out_h * d_out_w - 32'sd1) * d_out_ps + d_out_c
        : d_batch * d_out_h * d_out_w * d_out_c;
    wire signed [31:0] n_in_words = (n_in + ACT_L - 1) >>> ACT_LOG2L;
    wire signed [31:0] n_out_words = (n_out + ACT_L - 1) >>> ACT_LOG2L;

    // ---- engines ----------------------------------------------------------------------------
    reg  mac_start, elem_start;
    wire mac_done, mac_limit, elem_done;
    reg  [4:0] flags;
    wire              mac_act_re, elem_act_re;
    wire [ACT_AW-1:0] mac_act_raddr, elem_act_raddr;
    wire              mac_act_we, elem_act_we;
    wire [ACT_AW-1:0] mac_act_waddr, elem_act_waddr;
    wire [ACT_W-1:0]  mac_act_wdata, elem_act_wdata;
    wire [ACT_L-1:0]  mac_act_wmask, elem_act_wmask;
    wire              mac_rq_re;
    wire [RQ_AW-1:0]  mac_rq_raddr;
    hwsim_mac_engine #(
        .ROWS(ROWS), .COLS(COLS), .ACC_BITS(ACC_BITS), .ACC_SATURATE(ACC_SATURATE),
        .BIAS_FIRST(BIAS_FIRST), .WEIGHT_STATIONARY(WEIGHT_STATIONARY), .IN_BITS(IN_BITS),
        .IN_SIGNED(IN_SIGNED), .W_BITS(W_BITS), .W_SIGNED(W_SIGNED), .OUT_BITS(OUT_BITS),
        .OUT_SIGNED(OUT_SIGNED), .ACT_W(ACT_W), .ACT_L(ACT_L), .ACT_LOG2L(ACT_LOG2L),
        .ACT_EB(ACT_EB), .ACT_MSB_FIRST(ACT_MSB_FIRST), .ACT_AW(ACT_AW), .WGT_W(WGT_W),
        .WGT_L(WGT_L), .WGT_EB(WGT_EB), .WGT_MSB_FIRST(WGT_MSB_FIRST), .WGT_AW(WGT_AW),
        .BIAS_W(BIAS_W), .BIAS_EB(BIAS_EB), .BIAS_AW(BIAS_AW), .RQ_W(RQ_W), .RQ_AW(RQ_AW),
        .XBUF_DEPTH(XBUF_DEPTH)
    ) mac (
        .clk(clk), .rst(rst), .start(mac_start), .done(mac_done), .limit_error(mac_limit),
        .desc(desc), .acc_en(flags[2]), .acc_trace(flags[3]),
        .act_re(mac_act_re), .act_raddr(mac_act_raddr), .act_rdata(ram_rdata),
        .act_we(mac_act_we), .act_waddr(mac_act_waddr), .act_wdata(mac_act_wdata),
        .act_wmask(mac_act_wmask),
        .wgt_re(mac_wgt_re), .wgt_raddr(mac_wgt_raddr), .wgt_rdata(wgt_rdata),
        .bias_re(bias_re), .bias_raddr(bias_raddr), .bias_rdata(bias_rdata),
        .rq_re(mac_rq_re), .rq_raddr(mac_rq_raddr), .rq_rdata(rq_rdata),
        .m_acc_tvalid(m_axis_acc_tvalid), .m_acc_tready(m_axis_acc_tready),
        .m_acc_tdata(m_axis_acc_tdata), .m_acc_tuser(m_axis_acc_tuser),
        .m_acc_tlast(m_axis_acc_tlast));
    // The element engine's lanes see the read data only when it ran the read (its ADD / pool
    // logic then stays still during MAC layers: simulation time).
    reg elem_rd_t1;
    always @(posedge clk) elem_rd_t1 <= elem_act_re;
    wire [ACT_W-1:0] elem_rdata = elem_rd_t1 ? ram_rdata : {ACT_W{1'b0}};
    hwsim_elem_engine #(
        .ACT_W(ACT_W), .ACT_L(ACT_L), .ACT_LOG2L(ACT_LOG2L), .ACT_EB(ACT_EB),
        .ACT_MSB_FIRST(ACT_MSB_FIRST), .ACT_AW(ACT_AW), .IN_BITS(IN_BITS), .IN_SIGNED(IN_SIGNED),
        .OUT_BITS(OUT_BITS), .OUT_SIGNED(OUT_SIGNED), .WGT_W(WGT_W), .WGT_L(WGT_L),
        .WGT_EB(WGT_EB), .WGT_MSB_FIRST(WGT_MSB_FIRST), .WGT_AW(WGT_AW)
    ) elem (
        .clk(clk), .rst(rst), .start(elem_start), .done(elem_done), .desc(desc), .rq0(rq0[63:0]),
        .act_re(elem_act_re), .act_raddr(elem_act_raddr), .act_rdata(elem_rdata),
        .act_we(elem_act_we), .act_waddr(elem_act_waddr), .act_wdata(elem_act_wdata),
        .act_wmask(elem_act_wmask), .wgt_re(elem_wgt_re), .wgt_raddr(elem_wgt_raddr),
        .wgt_rdata(wgt_rdata));

    // ---- controller -------------------------------------------------------------------------
    localparam [3:0] C_IDLE = 4'd0, C_DESC = 4'd1, C_DESC_WAIT = 4'd2, C_RQ0 = 4'd3,
                     C_RQ0_WAIT = 4'd4, C_CHECK = 4'd5, C_LOAD1 = 4'd6, C_LOAD2 = 4'd7,
                     C_RUN = 4'd8, C_WAIT = 4'd9, C_OUT = 4'd10, C_DONE = 4'd11;
    reg [3:0] state;
    reg [15:0] layer;
    reg signed [31:0] di;                      // descriptor word being fetched
    reg dt1_valid;                             // desc_rdata holds word dt1_i
    reg [7:0] dt1_i;
    reg [1:0] rq_wait;
    reg signed [31:0] ld_cnt;                  // words loaded from s_axis
    reg               c_we;
    reg [ACT_AW-1:0]  c_waddr;
    reg [ACT_W-1:0]   c_wdata;
    /* verilator lint_off UNUSEDSIGNAL */  // 32-bit index arithmetic, sliced to widths
    wire signed [31:0] desc_addr32 = {16'd0, layer} * DESC_WORDS + di;
    wire signed [31:0] ld_addr32 = ((state == C_LOAD2) ? d_in2_base : d_in_base) + ld_cnt;
    wire signed [31:0] rq0_addr32 = d_rq_base;
    /* verilator lint_on UNUSEDSIGNAL */

    assign s_axis_tready = state == C_LOAD1 || state == C_LOAD2;
    wire s_fire = s_axis_tvalid && s_axis_tready;

    // output streamer: reads the output region into a 4-entry FIFO ahead of m_axis (the
    // controller's RAM and ROM addresses are combinational: read data one cycle later)
    reg signed [31:0] o_issue, o_sent;
    reg               ot1_valid;
    reg [ACT_W-1:0]   ofifo [0:3];
    reg [1:0]         of_wr, of_rd;
    reg [2:0]         of_cnt;
    /* verilator lint_off UNUSEDSIGNAL */  // 32-bit index arithmetic, sliced to widths
    wire signed [31:0] o_addr32 = d_out_base + o_issue;
    /* verilator lint_on UNUSEDSIGNAL */
    wire o_can_issue = state == C_OUT && o_issue < n_out_words
                       && of_cnt + {2'd0, ot1_valid} < 3'd4;
    assign m_axis_tvalid = of_cnt != 3'd0;
    assign m_axis_tdata = ofifo[of_rd];
    assign m_axis_tlast = o_sent == n_out_words - 32'sd1;
    wire o_pop = m_axis_tvalid && m_axis_tready;

    // activation memory port muxes
    always @* begin
        if (state == C_OUT) begin
            ram_re = o_can_issue;
            ram_raddr = o_addr32[ACT_AW-1:0];
        end else if (is_mac_op) begin
            ram_re = mac_act_re;
            ram_raddr = mac_act_raddr;
        end else begin
            ram_re = elem_act_re;
            ram_raddr = elem_act_raddr;
        end
        if (c_we) begin
            ram_we = 1'b1;
            ram_waddr = c_waddr;
            ram_wdata = c_wdata;
            ram_wmask = {ACT_L{1'b1}};
        end else if (is_mac_op) begin
            ram_we = mac_act_we;
            ram_waddr = mac_act_waddr;
            ram_wdata = mac_act_wdata;
            ram_wmask = mac_act_wmask;
        end else begin
            ram_we = elem_act_we;
            ram_waddr = elem_act_waddr;
            ram_wdata = elem_act_wdata;
            ram_wmask = elem_act_wmask;
        end
        if (state == C_RQ0) begin
            rq_re = 1'b1;
            rq_raddr = rq0_addr32[RQ_AW-1:0];
        end else begin
            rq_re = mac_rq_re;
            rq_raddr = mac_rq_raddr;
        end
        desc_re = state == C_DESC;
        desc_raddr = desc_addr32[DESC_AW-1:0];
    end

    // output FIFO
    always @(posedge clk) begin
        ot1_valid <= o_can_issue && !rst;
        if (rst || state == C_CHECK) begin
            of_wr <= 2'd0;
            of_rd <= 2'd0;
            of_cnt <= 3'd0;
            o_issue <= 32'sd0;
            o_sent <= 32'sd0;
        end else begin
            if (o_can_issue) o_issue <= o_issue + 32'sd1;
            if (ot1_valid) begin
                ofifo[of_wr] <= ram_rdata;
                of_wr <= of_wr + 2'd1;
            end
            if (o_pop) begin
                of_rd <= of_rd + 2'd1;
                o_sent <= o_sent + 32'sd1;
            end
            of_cnt <= of_cnt + {2'd0, ot1_valid} - {2'd0, o_pop};
        end
    end

    // descriptor words land one cycle after their address
    always @(posedge clk)
        if (dt1_valid) desc[dt1_i*32 +: 32] <= desc_rdata;

    wire counting = state == C_WAIT;  // the engine runs (the dataflow model's cycles)

    always @(posedge clk) begin
        mac_start <= 1'b0;
        elem_start <= 1'b0;
        dt1_valid <= 1'b0;
        c_we <= 1'b0;
        if (rst) begin
            state <= C_IDLE;
            sts_busy <= 1'b0;
            sts_done <= 1'b0;
            sts_error <= 8'd0;
            sts_op <= 8'd0;
            sts_cycles <= 32'd0;
            sts_total_cycles <= 32'd0;
            flags <= 5'd0;
        end else begin
            if (sts_busy) begin
                sts_total_cycles <= sts_total_cycles + 32'd1;
                if (counting) sts_cycles <= sts_cycles + 32'd1;
            end
            case (state)
            C_IDLE: if (cmd_start) begin
                layer <= cmd_layer;
                flags <= cmd_flags[4:0];
                sts_busy <= 1'b1;
                sts_done <= 1'b0;
                sts_error <= 8'd0;
                sts_cycles <= 32'd0;
                sts_total_cycles <= 32'd0;
                di <= 32'sd0;
                state <= C_DESC;
            end
            C_DESC: begin
                dt1_valid <= 1'b1;
                dt1_i <= di[7:0];
                di <= di + 32'sd1;
                if (di + 32'sd1 >= DU) state <= C_DESC_WAIT;
            end
            C_DESC_WAIT: if (!dt1_valid) state <= C_RQ0;
            C_RQ0: begin
                rq_wait <= 2'd2;
                state <= C_RQ0_WAIT;
            end
            C_RQ0_WAIT: begin
                if (rq_wait == 2'd1) rq0 <= rq_rdata;
                if (rq_wait == 2'd1) state <= C_CHECK;
                rq_wait <= rq_wait - 2'd1;
            end
            C_CHECK: begin
                sts_op <= d_op[7:0];
                ld_cnt <= 32'sd0;
                if (d_op == `HWSIM_OP_END) begin
                    state <= C_DONE;
                end else if (!is_mac_op && !is_elem_op) begin
                    sts_error[0] <= 1'b1;
                    state <= C_DONE;
                end else if (flags[0] && !flags[4] && n_in_words > 0) begin
                    state <= C_LOAD1;
                end else begin
                    state <= C_RUN;
                end
            end
            C_LOAD1, C_LOAD2: if (s_fire) begin
                c_we <= 1'b1;
                c_waddr <= ld_addr32[ACT_AW-1:0];
                c_wdata <= s_axis_tdata;
                if (s_axis_tlast != (ld_cnt + 32'sd1 >= n_in_words)) sts_error[2] <= 1'b1;
                if (ld_cnt + 32'sd1 >= n_in_words) begin
                    ld_cnt <= 32'sd0;
                    state <= (state == C_LOAD1 && is_two_in) ? C_LOAD2 : C_RUN;
                end else begin
                    ld_cnt <= ld_cnt + 32'sd1;
                end
            end
            C_RUN: if (!c_we) begin
                mac_start <= is_mac_op;
                elem_start <= is_elem_op;
                state <= C_WAIT;
            end
            C_WAIT: if (mac_done || elem_done) begin
                if (mac_done && mac_limit) sts_error[1] <= 1'b1;
                state <= (flags[1] && n_out_words > 0) ? C_OUT : C_DONE;
            end
            C_OUT: if (o_pop && o_sent + 32'sd1 >= n_out_words) state <= C_DONE;
            C_DONE: begin
                sts_busy <= 1'b0;
                sts_done <= 1'b1;
                state <= C_IDLE;
            end
            default: state <= C_IDLE;
            endcase
        end
    end

`ifndef SYNTHESIS
    // Simulation only: the trace transport of the cocotb bench (cmd_flags bits 3 and 4): the
    // bench hands inputs over and takes outputs back through files, with no clock cycles and
    // no Python per word (docs/cosim.md, "Simulation speed").
    reg [8*1024-1:0] tr_in1, tr_in2, tr_out;
    integer tr_out_fd, ti;
    reg tr_has_in1, tr_has_in2;
    initial begin
        tr_out_fd = 0;
        tr_has_in1 = $value$plusargs("HWSIM_TRACE_IN1=%s", tr_in1);
        tr_has_in2 = $value$plusargs("HWSIM_TRACE_IN2=%s", tr_in2);
        if ($value$plusargs("HWSIM_TRACE_OUT=%s", tr_out)) tr_out_fd = $fopen(tr_out, "w");
    end
    /* verilator lint_off UNUSEDSIGNAL */  // 32-bit index arithmetic, sliced to widths
    wire signed [31:0] tr_in1_end = d_in_base + n_in_words - 32'sd1;
    wire signed [31:0] tr_in2_end = d_in2_base + n_in_words - 32'sd1;
    /* verilator lint_on UNUSEDSIGNAL */
    always @(posedge clk) begin
        if (state == C_CHECK && flags[4] && (is_mac_op || is_elem_op) && n_in_words > 0) begin
            if (tr_has_in1)
                $readmemh(tr_in1, act_ram.mem, d_in_base[ACT_AW-1:0], tr_in1_end[ACT_AW-1:0]);
            if (is_two_in && tr_has_in2)
                $readmemh(tr_in2, act_ram.mem, d_in2_base[ACT_AW-1:0], tr_in2_end[ACT_AW-1:0]);
        end
        if (state == C_WAIT && (mac_done || elem_done) && flags[3] && tr_out_fd != 0) begin
            for (ti = 0; ti < n_out_words; ti = ti + 1)
                $fwrite(tr_out_fd, "%h\n", act_ram.mem[d_out_base[ACT_AW-1:0] + ti[ACT_AW-1:0]]);
            $fflush(tr_out_fd);
        end
    end
`endif

    initial begin
        state = C_IDLE;
        sts_busy = 1'b0;
        sts_done = 1'b0;
        sts_error = 8'd0;
        sts_op = 8'd0;
        sts_cycles = 32'd0;
        sts_total_cycles = 32'd0;
        dt1_valid = 1'b0;
        c_we = 1'b0;
        ot1_valid = 1'b0;
        elem_rd_t1 = 1'b0;
        of_cnt = 3'd0;
        of_wr = 2'd0;
        of_rd = 2'd0;
        flags = 5'd0;
        desc = {DU*32{1'b0}};
    end
endmodule
`default_nettype wire
