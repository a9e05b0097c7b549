// hwsim_gather: the im2col unit of the MAC engine, with two buffer banks (ping-pong), so the
// next job is gathered while the array computes on the other bank.
//
// A job is one pixel tile (CONV / FC: ROWS output pixels x every input channel, reused by all
// channel tiles of the pixel tile) or one tile (DWCONV: ROWS pixels x the input channels of the
// tile's COLS output channels). For each row (pixel) and tap (ky, kx) the run of input elements
// the tap needs (CONV / FC without horizontal dilation: the run of a whole kernel row, whose
// taps are adjacent pixels) is read word by word from the activation memory (one word per
// cycle) into the row's buffer as x + input_offset; the taps in the padding are skipped (no
// read, no cycle: the row keeps the rectangle of its inside taps, and its reader returns 0
// outside it, as TFLite adds nothing for them). Job j goes to bank j % 2 once the array has
// released job j - 2 (jobs_released); jobs_done counts the jobs complete in their bank.
//
// Row read ports (one per array row, registered, moving when `adv` is high): row r reads
// element k of its bank (CONV / FC: one value for every column; DWCONV: element k * COLS + slot
// of each column, `slot_map` giving the slot of column c's input channel in the tile), 0 when
// the step's tap (ky, kx) lies outside the row's rectangle.
`default_nettype none
`include "hwsim_desc.vh"
module hwsim_gather #(
    parameter ROWS = 8,
    parameter COLS = 8,
    parameter XW = 9,
    parameter IN_BITS = 8,
    parameter IN_SIGNED = 1,
    parameter ACT_W = 64,
    parameter ACT_L = 8,
    parameter ACT_LOG2L = 3,
    parameter ACT_EB = 8,
    parameter ACT_MSB_FIRST = 0,
    parameter ACT_AW = 17,
    parameter XBUF_DEPTH = 8192
) (
    input  wire                           clk,
    input  wire                           rst,
    input  wire                           start,          // a layer starts: job 0
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [`HWSIM_DESC_USED*32-1:0] desc,
    input  wire [31:0]                    n_jobs,
    input  wire [31:0]                    jobs_released,
    input  wire [ROWS*32-1:0]             rd_k,
    input  wire [ROWS*16-1:0]             rd_ky,
    input  wire [ROWS*16-1:0]             rd_kx,
    /* verilator lint_on UNUSEDSIGNAL */
    output reg  [31:0]                    jobs_done,
    output reg                            act_re,
    output reg  [ACT_AW-1:0]              act_raddr,
    /* verilator lint_off UNUSEDSIGNAL */  // a lane's bits above IN_BITS: the value's extension
    input  wire [ACT_W-1:0]               act_rdata,
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire                           adv,
    input  wire [ROWS-1:0]                rd_valid,
    input  wire [ROWS-1:0]                rd_bank,
    input  wire [ROWS-1:0]                rd_par,
    input  wire [2*COLS*32-1:0]           slot_map,
    output reg  [ROWS*COLS*XW-1:0]        rd_x
);
    localparam XIDX_W = $clog2(2 * ROWS * XBUF_DEPTH);

    /* verilator lint_off UNUSEDSIGNAL */  // 32-bit fields and index arithmetic, sliced
    wire signed [31:0] d_op      = `HWSIM_DF(desc, `HWSIM_D_OP);
    wire signed [31:0] d_in_h    = `HWSIM_DF(desc, `HWSIM_D_IN_H);
    wire signed [31:0] d_in_w    = `HWSIM_DF(desc, `HWSIM_D_IN_W);
    wire signed [31:0] d_in_c    = `HWSIM_DF(desc, `HWSIM_D_IN_C);
    wire signed [31:0] d_out_h   = `HWSIM_DF(desc, `HWSIM_D_OUT_H);
    wire signed [31:0] d_out_w   = `HWSIM_DF(desc, `HWSIM_D_OUT_W);
    wire signed [31:0] d_out_c   = `HWSIM_DF(desc, `HWSIM_D_OUT_C);
    wire signed [31:0] d_kh      = `HWSIM_DF(desc, `HWSIM_D_KH);
    wire signed [31:0] d_kw      = `HWSIM_DF(desc, `HWSIM_D_KW);
    wire signed [31:0] d_sh      = `HWSIM_DF(desc, `HWSIM_D_STRIDE_H);
    wire signed [31:0] d_sw      = `HWSIM_DF(desc, `HWSIM_D_STRIDE_W);
    wire signed [31:0] d_dh      = `HWSIM_DF(desc, `HWSIM_D_DILATION_H);
    wire signed [31:0] d_dw      = `HWSIM_DF(desc, `HWSIM_D_DILATION_W);
    wire signed [31:0] d_pt      = `HWSIM_DF(desc, `HWSIM_D_PAD_TOP);
    wire signed [31:0] d_pl      = `HWSIM_DF(desc, `HWSIM_D_PAD_LEFT);
    wire signed [31:0] d_dm      = `HWSIM_DF(desc, `HWSIM_D_DEPTH_MULT);
    wire signed [31:0] d_in_base = `HWSIM_DF(desc, `HWSIM_D_IN_BASE);
    wire signed [31:0] d_in_off  = `HWSIM_DF(desc, `HWSIM_D_INPUT_OFFSET);
    wire signed [31:0] d_batch   = `HWSIM_DF(desc, `HWSIM_D_BATCH);

    // effective geometry: FC = a 1x1 convolution over `batch` pixels of depth in_c
    wire is_dw = d_op == `HWSIM_OP_DWCONV;
    wire is_fc = d_op == `HWSIM_OP_FC;
    wire signed [31:0] e_ih = is_fc ? 32'sd1 : d_in_h;
    wire signed [31:0] e_iw = is_fc ? 32'sd1 : d_in_w;
    wire signed [31:0] e_oh = is_fc ? 32'sd1 : d_out_h;
    wire signed [31:0] e_ow = is_fc ? 32'sd1 : d_out_w;
    wire signed [31:0] e_kh = is_fc ? 32'sd1 : d_kh;
    wire signed [31:0] e_kw = is_fc ? 32'sd1 : d_kw;
    wire signed [31:0] e_sh = is_fc ? 32'sd1 : d_sh;
    wire signed [31:0] e_sw = is_fc ? 32'sd1 : d_sw;
    wire signed [31:0] e_dh = is_fc ? 32'sd1 : d_dh;
    wire signed [31:0] e_dw = is_fc ? 32'sd1 : d_dw;
    wire signed [31:0] e_pt = is_fc ? 32'sd0 : d_pt;
    wire signed [31:0] e_pl = is_fc ? 32'sd0 : d_pl;
    wire signed [31:0] e_dm = (is_dw && d_dm > 32'sd1) ? d_dm : 32'sd1;
    wire signed [31:0] e_c  = d_in_c;
    wire signed [31:0] oc   = d_out_c;
    wire signed [31:0] n_pix = d_batch * e_oh * e_ow;

    // ---- the job: pixel tile jpt (first pixel at t_n, t_oy, t_ox), DWCONV channel tile jct ----
    localparam [1:0] G_IDLE = 2'd0, G_WAIT = 2'd1, G_RUN = 2'd2;
    reg [1:0] state;
    reg [31:0] job;
    reg signed [31:0] jpt, jct, t_n, t_oy, t_ox;
    reg bank;
    wire signed [31:0] j_ncols = (oc - jct < COLS) ? oc - jct : COLS;
    wire signed [31:0] j_ic = jct / e_dm;          // first input channel of the DWCONV tile
    wire signed [31:0] j_m = jct % e_dm;
    wire signed [31:0] j_nic = (j_m + j_ncols - 32'sd1) / e_dm + 32'sd1;

    // ---- the walk: row g_r (pixel g_n, g_oy, g_ox), tap (ky, kx) -----------------------------
    // The taps of a pixel inside the image form a rectangle ky in [ky_lo, ky_hi], kx in
    // [kx_lo, kx_hi] (iy = oy * stride - pad + ky * dilation grows with ky): the walk visits only
    // those, one word per cycle, and stores the rectangle for the row's reader (taps outside it
    // read as 0, as TFLite skips them).
    reg signed [31:0] g_r, g_n, g_oy, g_ox, g_ky, g_kx;
    reg               g_row_start;                 // (ky, kx) = (ky_lo, kx_lo) of this pixel
    reg               g_in_run;
    reg signed [31:0] g_cur_w, g_end_w, run_s, run_len, run_dst;
    wire signed [31:0] by = g_oy * e_sh - e_pt;       // iy of ky = 0
    wire signed [31:0] bx = g_ox * e_sw - e_pl;
    wire signed [31:0] ky_lo = (by >= 0) ? 32'sd0 : (e_dh - 32'sd1 - by) / e_dh;
    wire signed [31:0] kx_lo = (bx >= 0) ? 32'sd0 : (e_dw - 32'sd1 - bx) / e_dw;
    wire signed [31:0] ky_top = (e_ih - 32'sd1 - by < 0) ? -32'sd1 : (e_ih - 32'sd1 - by) / e_dh;
    wire signed [31:0] kx_top = (e_iw - 32'sd1 - bx < 0) ? -32'sd1 : (e_iw - 32'sd1 - bx) / e_dw;
    wire signed [31:0] ky_hi = (ky_top < e_kh - 32'sd1) ? ky_top : e_kh - 32'sd1;
    wire signed [31:0] kx_hi = (kx_top < e_kw - 32'sd1) ? kx_top : e_kw - 32'sd1;
    wire g_row_ok = jpt + g_r < n_pix;
    wire g_empty = !g_row_ok || ky_lo > ky_hi || kx_lo > kx_hi;   // no tap inside: no read
    wire signed [31:0] c_ky = g_row_start ? ky_lo : g_ky;
    wire signed [31:0] c_kx = g_row_start ? kx_lo : g_kx;
    wire signed [31:0] g_iy = by + c_ky * e_dh;
    wire signed [31:0] g_ix = bx + c_kx * e_dw;
    wire signed [31:0] g_tap = c_ky * e_kw + c_kx;
    wire signed [31:0] g_s = ((g_n * e_ih + g_iy) * e_iw + g_ix) * e_c + (is_dw ? j_ic : 32'sd0);
    // CONV / FC with dilation_w 1: the taps kx_lo .. kx_hi of a kernel row are adjacent input
    // pixels, one contiguous run in memory and in the row's buffer: read as one run
    wire row_runs = !is_dw && e_dw == 32'sd1;
    wire signed [31:0] g_len = is_dw ? j_nic : (row_runs ? (kx_hi - kx_lo + 32'sd1) * e_c : e_c);
    wire signed [31:0] g_dst = ({31'd0, bank} * ROWS + g_r) * XBUF_DEPTH
                               + g_tap * (is_dw ? COLS : e_c);
    wire signed [31:0] g_w0 = g_s >>> ACT_LOG2L;
    wire signed [31:0] g_w1 = (g_s + g_len - 32'sd1) >>> ACT_LOG2L;
    // the current tap's words are all issued this cycle
    wire g_tap_end = g_in_run ? (g_cur_w == g_end_w) : (g_empty || g_w1 == g_w0);
    wire g_kx_last = row_runs || c_kx >= kx_hi;   // the run reaches the kernel row's end
    wire g_row_end = g_tap_end && (g_empty || (g_kx_last && c_ky >= ky_hi));
    wire g_job_end = g_row_end && g_r == ROWS - 1;
    wire signed [31:0] g_raddr32 = d_in_base + (g_in_run ? g_cur_w : g_w0);
    // the next job and whether its bank is free (job j uses bank j % 2; job j - 2 released)
    wire [31:0] nx_job = job + 32'd1;
    wire nx_dw_same = is_dw && jct + COLS < oc;     // next DWCONV channel tile, same pixels
    wire nx_go = nx_job < n_jobs && nx_job - jobs_released < 32'd2;

    // read tags: t1 = address registered, t2 = data registered; jt*: a job's last read has
    // landed (with or without a read in the same cycle)
    reg               t1_valid, t2_valid, jt1, jt2;
    reg signed [31:0] t1_w, t1_s, t1_len, t1_dst, t2_w, t2_s, t2_len, t2_dst;
    reg [63:0]        rect [0:2*ROWS-1];  // per bank and row: {ky_lo, ky_hi, kx_lo, kx_hi}
    reg [XW-1:0]      xbuf [0:2*ROWS*XBUF_DEPTH-1];

    // lanes of the word read back: element index, hit, destination, value + input_offset
    wire [ACT_L-1:0]        lane_hit;
    wire [ACT_L*XIDX_W-1:0] lane_idx;
    wire [ACT_L*XW-1:0]     lane_x;
    genvar gl;
    generate
        for (gl = 0; gl < ACT_L; gl = gl + 1) begin : g_lane
            localparam integer PHYS = ACT_MSB_FIRST ? (ACT_L - 1 - gl) : gl;
            wire signed [31:0] e = (t2_w <<< ACT_LOG2L) + gl;
            wire signed [31:0] di = t2_dst + e - t2_s;
            wire [IN_BITS-1:0] v = act_rdata[PHYS*ACT_EB +: IN_BITS];
            wire sgn = IN_SIGNED != 0 && v[IN_BITS-1];
            wire signed [31:0] vx = $signed({{(32 - IN_BITS){sgn}}, v}) + d_in_off;
            assign lane_hit[gl] = t2_valid && e >= t2_s && e < t2_s + t2_len;
            assign lane_idx[gl*XIDX_W +: XIDX_W] = di[XIDX_W-1:0];
            assign lane_x[gl*XW +: XW] = vx[XW-1:0];
        end
    endgenerate
    /* verilator lint_on UNUSEDSIGNAL */

    integer l;
    always @(posedge clk) begin
        t2_valid <= t1_valid && !rst;
        if (t1_valid) begin  // (the tags move only with a read: less to simulate when idle)
            t2_w <= t1_w;
            t2_s <= t1_s;
            t2_len <= t1_len;
            t2_dst <= t1_dst;
        end
        if (t2_valid)
            for (l = 0; l < ACT_L; l = l + 1)
                if (lane_hit[l]) xbuf[lane_idx[l*XIDX_W +: XIDX_W]] <= lane_x[l*XW +: XW];
    end

    // the first pixel of the next row (the walk leaves it in g_* after the job's last row)
    task next_pixel;
        begin
            if (g_ox + 32'sd1 < e_ow) begin
                g_ox <= g_ox + 32'sd1;
            end else begin
                g_ox <= 32'sd0;
                if (g_oy + 32'sd1 < e_oh) begin
                    g_oy <= g_oy + 32'sd1;
                end else begin
                    g_oy <= 32'sd0;
                    g_n <= g_n + 32'sd1;
                end
            end
        end
    endtask

    always @(posedge clk) begin
        act_re <= 1'b0;
        t1_valid <= 1'b0;
        jt1 <= 1'b0;
        jt2 <= jt1 && !rst;
        if (jt2) jobs_done <= jobs_done + 32'd1;
        if (rst) begin
            state <= G_IDLE;
            jobs_done <= 32'd0;
            g_in_run <= 1'b0;
        end else if (start) begin
            job <= 32'd0;
            jobs_done <= 32'd0;
            jpt <= 32'sd0;
            jct <= 32'sd0;
            t_n <= 32'sd0;
            t_oy <= 32'sd0;
            t_ox <= 32'sd0;
            g_n <= 32'sd0;
            g_oy <= 32'sd0;
            g_ox <= 32'sd0;
            g_r <= 32'sd0;
            g_row_start <= 1'b1;
            g_in_run <= 1'b0;
            bank <= 1'b0;
            state <= (n_jobs > 32'd0) ? G_RUN : G_IDLE;
        end else begin
            case (state)
            G_WAIT: if (job - jobs_released < 32'd2) state <= G_RUN;
            G_RUN: begin
                if (g_row_start)
                    rect[{31'd0, bank} * ROWS + g_r] <= g_empty ? {16'sd1, 16'sd0, 16'sd1, 16'sd0}
                        : {ky_lo[15:0], ky_hi[15:0], kx_lo[15:0], kx_hi[15:0]};
                if (!g_empty) begin
                    act_re <= 1'b1;
                    act_raddr <= g_raddr32[ACT_AW-1:0];
                    t1_valid <= 1'b1;
                    t1_w <= g_in_run ? g_cur_w : g_w0;
                    t1_s <= g_in_run ? run_s : g_s;
                    t1_len <= g_in_run ? run_len : g_len;
                    t1_dst <= g_in_run ? run_dst : g_dst;
                end
                g_row_start <= 1'b0;
                g_ky <= c_ky;
                g_kx <= c_kx;
                if (!g_in_run && !g_empty && g_w1 != g_w0) begin
                    g_in_run <= 1'b1;
                    g_cur_w <= g_w0 + 32'sd1;
                    g_end_w <= g_w1;
                    run_s <= g_s;
                    run_len <= g_len;
                    run_dst <= g_dst;
                end else if (g_in_run && !g_tap_end) begin
                    g_cur_w <= g_cur_w + 32'sd1;
                end
                if (g_tap_end) begin
                    g_in_run <= 1'b0;
                    if (!g_row_end) begin
                        if (!g_kx_last) begin
                            g_kx <= c_kx + 32'sd1;
                        end else begin
                            g_kx <= kx_lo;
                            g_ky <= c_ky + 32'sd1;
                        end
                    end else begin
                        g_row_start <= 1'b1;
                        next_pixel;
                        g_r <= g_r + 32'sd1;
                        if (g_job_end) begin
                            // this job is complete once its last read lands (jt*); the next
                            // job: the next DWCONV channel tile of these pixels, or the next
                            // pixel tile, whose first pixel the walk has reached
                            jt1 <= 1'b1;
                            job <= nx_job;
                            bank <= nx_job[0];
                            g_r <= 32'sd0;
                            if (nx_dw_same) begin
                                jct <= jct + COLS;
                                g_n <= t_n;
                                g_oy <= t_oy;
                                g_ox <= t_ox;
                            end else begin
                                jct <= 32'sd0;
                                jpt <= jpt + ROWS;
                                if (g_ox + 32'sd1 < e_ow) begin
                                    t_n <= g_n;
                                    t_oy <= g_oy;
                                    t_ox <= g_ox + 32'sd1;
                                end else if (g_oy + 32'sd1 < e_oh) begin
                                    t_n <= g_n;
                                    t_oy <= g_oy + 32'sd1;
                                    t_ox <= 32'sd0;
                                end else begin
                                    t_n <= g_n + 32'sd1;
                                    t_oy <= 32'sd0;
                                    t_ox <= 32'sd0;
                                end
                            end
                            state <= (nx_job >= n_jobs) ? G_IDLE : (nx_go ? G_RUN : G_WAIT);
                        end
                    end
                end
            end
            default: state <= G_IDLE;
            endcase
        end
    end

    // ---- row read ports -----------------------------------------------------------------------
    /* verilator lint_off UNUSEDSIGNAL */  // 32-bit index arithmetic, sliced
    // the COLS lanes row r's reader outputs for its step: element k (CONV / FC: the same value
    // in every lane; DWCONV: k * COLS + the slot of each column), 0 outside the row's rectangle
    function [COLS*XW-1:0] f_row_read;
        input integer r;
        reg [31:0] rb, xi;
        reg [63:0] rr;
        reg in_rect;
        integer c;
        begin
            rb = ({31'd0, rd_bank[r]} * ROWS + r) * XBUF_DEPTH;
            rr = rect[{31'd0, rd_bank[r]} * ROWS + r];
            in_rect = $signed(rd_ky[r*16 +: 16]) >= $signed(rr[63:48])
                      && $signed(rd_ky[r*16 +: 16]) <= $signed(rr[47:32])
                      && $signed(rd_kx[r*16 +: 16]) >= $signed(rr[31:16])
                      && $signed(rd_kx[r*16 +: 16]) <= $signed(rr[15:0]);
            if (is_dw) begin
                for (c = 0; c < COLS; c = c + 1) begin
                    xi = rb + rd_k[r*32 +: 32] * COLS
                         + slot_map[({31'd0, rd_par[r]} * COLS + c) * 32 +: 32];
                    f_row_read[c*XW +: XW] = in_rect ? xbuf[xi[XIDX_W-1:0]] : {XW{1'b0}};
                end
            end else begin
                xi = rb + rd_k[r*32 +: 32];
                f_row_read = {COLS{in_rect ? xbuf[xi[XIDX_W-1:0]] : {XW{1'b0}}}};
            end
        end
    endfunction
    /* verilator lint_on UNUSEDSIGNAL */
    integer r;
    always @(posedge clk)
        if (adv)
            for (r = 0; r < ROWS; r = r + 1)
                if (rd_valid[r]) rd_x[r*COLS*XW +: COLS*XW] <= f_row_read(r);

    initial begin
        state = G_IDLE;
        jobs_done = 32'd0;
        t1_valid = 1'b0;
        t2_valid = 1'b0;
        jt1 = 1'b0;
        jt2 = 1'b0;
        act_re = 1'b0;
        rd_x = {ROWS*COLS*XW{1'b0}};
    end
endmodule
`default_nettype wire
