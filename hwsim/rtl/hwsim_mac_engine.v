// hwsim_mac_engine: runs one CONV / DWCONV / FC layer on the ROWS x COLS systolic array.
//
// FC is a 1x1 convolution over `batch` pixels of depth in_c. The output is cut into tiles of
// ROWS pixels x COLS channels, pixel tiles outer, channel tiles inner. The units work on
// different tiles at once:
//   hwsim_gather    gathers the im2col rows of the next job (pixel tile; DWCONV: tile) into one
//                   bank while the array reads the other;
//   hwsim_wfeed     streams each tile's weights (word-major, into per-column FIFOs) and its
//                   bias / requant words (into slot tile % 2);
//   the head (here) emits the tile's K reduction steps k = 0 .. K-1, one per cycle, to row r's
//                   reader delayed by r cycles and to column c's reader delayed by c cycles;
//                   the systolic hwsim_mac_array applies step k in PE (r, c) at k + r + c.
//                   The next tile's first step follows the last one after ROWS + COLS - 2
//                   cycles (its first product lands right after the last PE's last product),
//                   so a tile takes K + ROWS + COLS - 2 cycles, the dataflow model's formula;
//   hwsim_drain     requantizes the captured tile row by row into hwsim_vec_writer.
// Every step register moves only when `adv` is high: the array freezes while a column's weight
// word is late or the shadow bank for the finished tile is still being drained.
// Read latency of every memory: address registered (cycle 0), data registered (cycle 1), used
// in cycle 2.
`default_nettype none
`include "hwsim_desc.vh"
module hwsim_mac_engine #(
    parameter ROWS = 8,
    parameter COLS = 8,
    parameter ACC_BITS = 32,
    parameter ACC_SATURATE = 0,
    parameter BIAS_FIRST = 1,
    parameter WEIGHT_STATIONARY = 0,
    parameter IN_BITS = 8,
    parameter IN_SIGNED = 1,
    parameter W_BITS = 8,
    parameter W_SIGNED = 1,
    parameter OUT_BITS = 8,
    parameter OUT_SIGNED = 1,
    parameter ACT_W = 64,
    parameter ACT_L = 8,
    parameter ACT_LOG2L = 3,
    parameter ACT_EB = 8,
    parameter ACT_MSB_FIRST = 0,
    parameter ACT_AW = 17,
    parameter WGT_W = 64,
    parameter WGT_L = 8,
    parameter WGT_EB = 8,
    parameter WGT_MSB_FIRST = 0,
    parameter WGT_AW = 16,
    parameter BIAS_W = 32,
    parameter BIAS_EB = 32,
    parameter BIAS_AW = 12,
    parameter RQ_W = 64,
    parameter RQ_AW = 12,
    parameter XBUF_DEPTH = 8192
) (
    input  wire                           clk,
    input  wire                           rst,
    input  wire                           start,
    output reg                            done,
    output reg                            limit_error,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [`HWSIM_DESC_USED*32-1:0] desc,
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire                           acc_en,      // accumulators on m_acc_*
    input  wire                           acc_trace,   // accumulators to the trace file (sim)
    output wire                           act_re,
    output wire [ACT_AW-1:0]              act_raddr,
    input  wire [ACT_W-1:0]               act_rdata,
    output wire                           act_we,
    output wire [ACT_AW-1:0]              act_waddr,
    output wire [ACT_W-1:0]               act_wdata,
    output wire [ACT_L-1:0]               act_wmask,
    output wire                           wgt_re,
    output wire [WGT_AW-1:0]              wgt_raddr,
    input  wire [WGT_W-1:0]               wgt_rdata,
    output wire                           bias_re,
    output wire [BIAS_AW-1:0]             bias_raddr,
    input  wire [BIAS_W-1:0]              bias_rdata,
    output wire                           rq_re,
    output wire [RQ_AW-1:0]               rq_raddr,
    input  wire [RQ_W-1:0]                rq_rdata,
    output wire                           m_acc_tvalid,
    input  wire                           m_acc_tready,
    output wire [COLS*64-1:0]             m_acc_tdata,
    output wire [47:0]                    m_acc_tuser,
    output wire                           m_acc_tlast
);
    localparam XW = IN_BITS + 1;                       // x + input_offset
    localparam WBX = W_BITS + ((W_SIGNED != 0) ? 0 : 1);
    localparam RW = (ROWS > 1) ? $clog2(ROWS) : 1;
    // step bits: 0 valid, 1 kfirst, 2 klast, 3 cfirst, 4 clast, 5 tile parity, 6 gather bank,
    // 7 last step of the job (its bank is released once row ROWS-1 has read it), [39:8] k,
    // [55:40] kx, [71:56] ky (the tap of k)
    localparam SB = 8 + 32 + 16 + 16;

    /* verilator lint_off UNUSEDSIGNAL */  // 32-bit fields and index arithmetic, sliced
    wire signed [31:0] d_op      = `HWSIM_DF(desc, `HWSIM_D_OP);
    wire signed [31:0] d_in_c    = `HWSIM_DF(desc, `HWSIM_D_IN_C);
    wire signed [31:0] d_out_h   = `HWSIM_DF(desc, `HWSIM_D_OUT_H);
    wire signed [31:0] d_out_w   = `HWSIM_DF(desc, `HWSIM_D_OUT_W);
    wire signed [31:0] d_out_c   = `HWSIM_DF(desc, `HWSIM_D_OUT_C);
    wire signed [31:0] d_kh      = `HWSIM_DF(desc, `HWSIM_D_KH);
    wire signed [31:0] d_kw      = `HWSIM_DF(desc, `HWSIM_D_KW);
    wire signed [31:0] d_dm      = `HWSIM_DF(desc, `HWSIM_D_DEPTH_MULT);
    wire signed [31:0] d_out_base = `HWSIM_DF(desc, `HWSIM_D_OUT_BASE);
    wire signed [31:0] d_wpc     = `HWSIM_DF(desc, `HWSIM_D_WPC);
    wire signed [31:0] d_batch   = `HWSIM_DF(desc, `HWSIM_D_BATCH);
    wire is_dw = d_op == `HWSIM_OP_DWCONV;
    wire is_fc = d_op == `HWSIM_OP_FC;
    wire signed [31:0] e_kh = is_fc ? 32'sd1 : d_kh;
    wire signed [31:0] e_kw = is_fc ? 32'sd1 : d_kw;
    wire signed [31:0] e_dm = (is_dw && d_dm > 32'sd1) ? d_dm : 32'sd1;
    wire signed [31:0] e_c  = d_in_c;
    wire signed [31:0] oc   = d_out_c;
    wire signed [31:0] n_pix = is_fc ? d_batch : d_batch * d_out_h * d_out_w;
    wire signed [31:0] n_taps = e_kh * e_kw;
    wire signed [31:0] k_len  = is_dw ? n_taps : n_taps * e_c;
    wire signed [31:0] n_pt = (n_pix + ROWS - 1) / ROWS;      // pixel tiles
    wire signed [31:0] n_ct = (oc + COLS - 1) / COLS;         // channel tiles
    wire [31:0] n_tiles = n_pt * n_ct;
    wire [31:0] n_jobs = is_dw ? n_tiles : n_pt;
    /* verilator lint_on UNUSEDSIGNAL */

    // ---- the head: tile h_t (pixel tile h_pt, channel tile h_ct, job h_job), step k -----------
    localparam [2:0] S_IDLE = 3'd0, S_SETUP = 3'd1, S_RUN = 3'd2, S_END = 3'd3,
                     S_FLUSH = 3'd4, S_FWAIT = 3'd5, S_DONE = 3'd6;
    reg [2:0] state;
    reg units_start;
    reg [31:0] h_t, h_job;
    reg signed [31:0] h_ct;
    reg h_running;                              // emitting the steps of tile h_t
    reg signed [31:0] h_k, h_ic, h_kx, h_ky, h_chunk, h_gap;
    wire signed [31:0] h_ncols = (oc - h_ct < COLS) ? oc - h_ct : COLS;
    wire h_job_end = !is_dw && h_ct + COLS < oc ? 1'b0 : 1'b1;  // the job's last tile
    reg [31:0] ncols_p [0:1];                   // per tile parity: active columns
    reg [2*COLS*32-1:0] slot_p;                 // per tile parity: DWCONV slot of each column
    reg [SB-1:0] rs [0:ROWS-1];                 // step at row r's reader
    reg [SB-1:0] cs [0:COLS-1];                 // step at column c's reader
    reg [ROWS*6-1:0] rowf;                      // flags of the value row r's reader outputs
    reg [31:0] jobs_released;
    localparam QW = $clog2(ROWS + COLS + 2) + 1;
    reg [QW-1:0] p_quiet;                       // adv cycles since the head's last step
    wire [31:0] jobs_done, slots_loaded, tiles_captured;
    wire last_step, bank_free, cap_bank, all_drained;
    reg cap_wait;
    wire cap_req = last_step || cap_wait;
    wire cap = cap_req && bank_free;

    // column readers: active columns of the step's tile, lane k % WGT_L of the FIFO head
    wire [COLS-1:0] col_need, col_pop, col_empty;
    wire [COLS*32-1:0] col_lane;
    genvar gc;
    generate
        for (gc = 0; gc < COLS; gc = gc + 1) begin : g_colrd
            /* verilator lint_off UNUSEDSIGNAL */  // the bits the column reader needs
            wire [SB-1:0] st = cs[gc];
            wire [31:0] k = st[8 +: 32];
            /* verilator lint_on UNUSEDSIGNAL */
            wire [31:0] lane = k & (WGT_L - 1);
            assign col_need[gc] = st[0] && gc < ncols_p[st[5]];
            assign col_pop[gc] = col_need[gc] && (lane == WGT_L - 1 || st[2]);
            assign col_lane[gc*32 +: 32] = lane;
        end
    endgenerate
    wire adv = !(|(col_need & col_empty)) && !(cap_req && !bank_free);
    wire h_go = h_running || (state == S_RUN && !units_start && h_t < n_tiles && h_gap == 32'sd0
                              && jobs_done > h_job && slots_loaded > h_t);

    // the new step of the head (valid when h_go)
    wire h_kfirst = h_running ? 1'b0 : 1'b1;
    wire signed [31:0] h_kk = h_running ? h_k : 32'sd0;
    wire signed [31:0] h_cc = h_running ? h_chunk : 32'sd0;
    wire h_klast = h_kk + 32'sd1 >= k_len;
    wire h_cfirst = h_cc == 32'sd0;
    wire h_clast = h_klast || h_cc + 32'sd1 >= ROWS;
    wire signed [31:0] h_i = h_running ? h_ic : 32'sd0;
    wire signed [31:0] h_x = h_running ? h_kx : 32'sd0;
    wire signed [31:0] h_y = h_running ? h_ky : 32'sd0;
    wire [SB-1:0] h_step = {h_y[15:0], h_x[15:0], h_kk, h_klast && h_job_end, h_job[0], h_t[0],
                            h_clast, h_cfirst, h_klast, h_kfirst, h_go};

    wire w_valid, w_ready, w_busy;
    wire w_flush;
    // ---- limits -------------------------------------------------------------------------------
    wire over_limits = (is_dw ? (n_taps * COLS > XBUF_DEPTH) : (k_len > XBUF_DEPTH))
                       || e_kh > 32'sd32767 || e_kw > 32'sd32767 || d_wpc * WGT_L < k_len
                       || n_pix < 1 || oc < 1 || k_len < 1;

    integer r, c;
    always @(posedge clk) begin
        units_start <= 1'b0;
        done <= 1'b0;
        if (rst) begin
            state <= S_IDLE;
            limit_error <= 1'b0;
            h_running <= 1'b0;
            cap_wait <= 1'b0;
            for (r = 0; r < ROWS; r = r + 1) rs[r] <= {SB{1'b0}};
            for (c = 0; c < COLS; c = c + 1) cs[c] <= {SB{1'b0}};
        end else begin
            cap_wait <= cap_req && !cap;
            if (adv && (h_go || p_quiet <= ROWS + COLS)) begin
                // the step pipelines move (they hold no step once ROWS + COLS cycles have
                // passed without one: then nothing to simulate); row readers' flags follow
                // their data
                p_quiet <= h_go ? {QW{1'b0}} : p_quiet + 1'b1;
                rs[0] <= h_step;
                for (r = 1; r < ROWS; r = r + 1) rs[r] <= rs[r-1];
                cs[0] <= h_step;
                for (c = 1; c < COLS; c = c + 1) cs[c] <= cs[c-1];
                for (r = 0; r < ROWS; r = r + 1) rowf[r*6 +: 6] <= rs[r][5:0];
                if (rs[ROWS-1][0] && rs[ROWS-1][7]) jobs_released <= jobs_released + 32'd1;
            end
            if (adv) begin
                if (h_gap != 32'sd0) h_gap <= h_gap - 32'sd1;
                if (h_go) begin
                    if (!h_running) begin
                        // a new tile: its column count and DWCONV slots, by parity
                        ncols_p[h_t[0]] <= h_ncols;
                        for (c = 0; c < COLS; c = c + 1)
                            slot_p[({31'd0, h_t[0]} * COLS + c) * 32 +: 32] <=
                                ((h_ct % e_dm) + c) / e_dm;
                    end
                    h_running <= !h_klast;
                    h_k <= h_kk + 32'sd1;
                    h_chunk <= h_clast ? 32'sd0 : h_cc + 32'sd1;
                    // k = ((ky * KW) + kx) * Cin + ic (CONV / FC), ky * KW + kx (DWCONV)
                    h_ic <= h_i + 32'sd1;
                    h_kx <= h_x;
                    h_ky <= h_y;
                    if (h_i + 32'sd1 >= e_c || is_dw) begin
                        h_ic <= 32'sd0;
                        h_kx <= h_x + 32'sd1;
                        if (h_x + 32'sd1 >= e_kw) begin
                            h_kx <= 32'sd0;
                            h_ky <= h_y + 32'sd1;
                        end
                    end
                    if (h_klast) begin
                        // the next tile starts ROWS + COLS - 2 cycles after this last step
                        h_gap <= ROWS + COLS - 2;
                        h_t <= h_t + 32'd1;
                        if (h_ct + COLS < oc) begin
                            h_ct <= h_ct + COLS;
                            if (is_dw) h_job <= h_job + 32'd1;
                        end else begin
                            h_ct <= 32'sd0;
                            h_job <= h_job + 32'd1;
                        end
                    end
                end
            end
            case (state)
            S_IDLE: if (start) begin
                limit_error <= 1'b0;
                state <= S_SETUP;
            end
            S_SETUP: begin
                h_t <= 32'd0;
                h_job <= 32'd0;
                h_ct <= 32'sd0;
                h_gap <= 32'sd0;
                h_running <= 1'b0;
                jobs_released <= 32'd0;
                if (over_limits) begin
                    limit_error <= 1'b1;
                    state <= S_DONE;
                end else begin
                    units_start <= 1'b1;
                    state <= S_RUN;
                end
            end
            S_RUN: if (!units_start && h_t >= n_tiles && !h_running && all_drained)
                state <= S_END;
            S_END: if (!w_busy) state <= S_FLUSH;
            S_FLUSH: state <= S_FWAIT;
            S_FWAIT: state <= S_DONE;
            S_DONE: begin
                done <= 1'b1;
                state <= S_IDLE;
            end
            default: state <= S_IDLE;
            endcase
        end
    end
    assign w_flush = state == S_FLUSH;

    // ---- units ------------------------------------------------------------------------------
    wire [ROWS-1:0] rd_valid, rd_bank, rd_par;
    wire [ROWS*32-1:0] rd_k;
    wire [ROWS*16-1:0] rd_ky, rd_kx;
    genvar gr;
    generate
        for (gr = 0; gr < ROWS; gr = gr + 1) begin : g_rowrd
            /* verilator lint_off UNUSEDSIGNAL */  // the bits the row reader needs
            wire [SB-1:0] st = rs[gr];
            /* verilator lint_on UNUSEDSIGNAL */
            assign rd_valid[gr] = st[0];
            assign rd_par[gr] = st[5];
            assign rd_bank[gr] = st[6];
            assign rd_k[gr*32 +: 32] = st[8 +: 32];
            assign rd_kx[gr*16 +: 16] = st[40 +: 16];
            assign rd_ky[gr*16 +: 16] = st[56 +: 16];
        end
    endgenerate
    wire [ROWS*COLS*XW-1:0] rd_x;
    hwsim_gather #(.ROWS(ROWS), .COLS(COLS), .XW(XW), .IN_BITS(IN_BITS), .IN_SIGNED(IN_SIGNED),
                   .ACT_W(ACT_W), .ACT_L(ACT_L), .ACT_LOG2L(ACT_LOG2L), .ACT_EB(ACT_EB),
                   .ACT_MSB_FIRST(ACT_MSB_FIRST), .ACT_AW(ACT_AW), .XBUF_DEPTH(XBUF_DEPTH)) gather (
        .clk(clk), .rst(rst), .start(units_start), .desc(desc), .n_jobs(n_jobs),
        .jobs_done(jobs_done), .jobs_released(jobs_released),
        .act_re(act_re), .act_raddr(act_raddr), .act_rdata(act_rdata),
        .adv(adv), .rd_valid(rd_valid), .rd_bank(rd_bank), .rd_par(rd_par), .rd_k(rd_k),
        .rd_ky(rd_ky), .rd_kx(rd_kx), .slot_map(slot_p), .rd_x(rd_x));

    wire [COLS*WBX-1:0] col_w;
    wire [2*COLS*BIAS_EB-1:0] bias_slots;
    wire [2*COLS*64-1:0] rq_slots;
    hwsim_wfeed #(.COLS(COLS), .WGT_W(WGT_W), .WGT_L(WGT_L), .WGT_EB(WGT_EB),
                  .WGT_MSB_FIRST(WGT_MSB_FIRST), .WGT_AW(WGT_AW), .W_BITS(W_BITS),
                  .W_SIGNED(W_SIGNED), .WBX(WBX), .BIAS_W(BIAS_W), .BW(BIAS_EB),
                  .BIAS_AW(BIAS_AW), .RQ_W(RQ_W), .RQ_AW(RQ_AW)) wfeed (
        .clk(clk), .rst(rst), .start(units_start), .desc(desc), .bias_rdata(bias_rdata),
        .rq_rdata(rq_rdata), .col_lane(col_lane), .n_tiles(n_tiles),
        .tiles_captured(tiles_captured), .slots_loaded(slots_loaded),
        .wgt_re(wgt_re), .wgt_raddr(wgt_raddr), .wgt_rdata(wgt_rdata),
        .bias_re(bias_re), .bias_raddr(bias_raddr), .rq_re(rq_re), .rq_raddr(rq_raddr),
        .adv(adv), .col_rd(col_need), .col_pop(col_pop), .col_empty(col_empty),
        .col_w(col_w), .bias_slots(bias_slots), .rq_slots(rq_slots));

    wire [ROWS*(6+COLS*XW)-1:0] row_in;
    generate
        for (gr = 0; gr < ROWS; gr = gr + 1) begin : g_rowin
            assign row_in[gr*(6+COLS*XW) +: 6+COLS*XW] =
                {rd_x[gr*COLS*XW +: COLS*XW], rowf[gr*6 +: 6]};
        end
    endgenerate
    wire rd_en, rd_bank_d;
    wire [RW-1:0] rd_row;
    wire [COLS*ACC_BITS-1:0] rd_vec;
    hwsim_mac_array #(.ROWS(ROWS), .COLS(COLS), .XW(XW), .WBX(WBX), .BW(BIAS_EB),
                      .ACC_BITS(ACC_BITS), .SATURATE(ACC_SATURATE), .BIAS_FIRST(BIAS_FIRST),
                      .WEIGHT_STATIONARY(WEIGHT_STATIONARY), .RW(RW)) array (
        .clk(clk), .rst(rst), .adv(adv), .row_in(row_in), .col_in(col_w), .bias(bias_slots),
        .last_step(last_step), .cap(cap), .cap_bank(cap_bank), .rd_en(rd_en),
        .rd_bank(rd_bank_d), .rd_row(rd_row), .rd_vec(rd_vec));

    wire [31:0] w_index, w_count;
    wire [COLS*ACT_EB-1:0] w_data;
    hwsim_drain #(.ROWS(ROWS), .COLS(COLS), .ACC_BITS(ACC_BITS), .OUT_BITS(OUT_BITS),
                  .OUT_SIGNED(OUT_SIGNED), .EB(ACT_EB), .RW(RW)) drain (
        .clk(clk), .rst(rst), .start(units_start), .desc(desc), .rq_slots(rq_slots),
        .n_tiles(n_tiles), .cap(cap), .bank_free(bank_free), .cap_bank(cap_bank),
        .tiles_captured(tiles_captured), .all_drained(all_drained),
        .rd_en(rd_en), .rd_bank(rd_bank_d), .rd_row(rd_row), .rd_vec(rd_vec),
        .w_valid(w_valid), .w_ready(w_ready), .w_index(w_index), .w_count(w_count),
        .w_data(w_data), .acc_stream(acc_en), .acc_trace(acc_trace),
        .m_acc_tvalid(m_acc_tvalid), .m_acc_tready(m_acc_tready), .m_acc_tdata(m_acc_tdata),
        .m_acc_tuser(m_acc_tuser), .m_acc_tlast(m_acc_tlast));

    hwsim_vec_writer #(.VL(COLS), .EB(ACT_EB), .WIDTH(ACT_W), .LANES(ACT_L),
                       .LOG2_LANES(ACT_LOG2L), .LANE_MSB_FIRST(ACT_MSB_FIRST), .AW(ACT_AW)) writer (
        .clk(clk), .rst(rst), .base(d_out_base), .in_valid(w_valid), .in_ready(w_ready),
        .in_index(w_index), .in_count(w_count), .in_data(w_data), .flush(w_flush),
        .busy(w_busy), .we(act_we), .waddr(act_waddr), .wdata(act_wdata), .wmask(act_wmask));

    integer i;
    initial begin
        state = S_IDLE;
        done = 1'b0;
        limit_error = 1'b0;
        h_running = 1'b0;
        cap_wait = 1'b0;
        units_start = 1'b0;
        jobs_released = 32'd0;
        p_quiet = {QW{1'b0}};
        rowf = {ROWS*6{1'b0}};
        slot_p = {2*COLS*32{1'b0}};
        ncols_p[0] = 32'd0;
        ncols_p[1] = 32'd0;
        for (i = 0; i < ROWS; i = i + 1) rs[i] = {SB{1'b0}};
        for (i = 0; i < COLS; i = i + 1) cs[i] = {SB{1'b0}};
    end
endmodule
`default_nettype wire
