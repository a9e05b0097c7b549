// hwsim_mac_engine: runs one CONV / DWCONV / FC layer on the ROWS x COLS output-stationary array.
//
// FC is a 1x1 convolution over `batch` pixels of depth in_c. The output is cut into tiles of
// ROWS pixels x COLS channels; pixel tiles outer, channel tiles inner. For each tile:
//   GATHER  im2col: for each of the ROWS pixels and each tap (ky, kx), the run of input
//           elements the tap needs (Cin channels for CONV/FC, the tile's channels for DWCONV)
//           is read word by word from the activation memory into the row's im2col buffer
//           (x + input_offset); taps in the padding are only flagged (they add nothing, as in
//           TFLite). CONV/FC gather once per pixel tile, DWCONV once per tile.
//   WLOAD   the COLS channels' weight rows (words_per_channel words each) into the weight
//           buffer, their bias and requant words into the channel caches. When the whole
//           layer's weights fit (out_c * words_per_channel <= COLS * WBUF_WORDS) they stay
//           resident: WLOAD runs during the first pixel tile only.
//   LOAD    every PE: acc <= bias (BIAS_FIRST) or 0.
//   MAC     K cycles, k in (ky, kx, ic) order: PE (r, c) adds x[r][k] * w[c][k].
//   BIAS    (BIAS_FIRST = 0) acc += bias.
//   CAPTURE the accumulators move to the array's shadow registers; the drain unit empties
//           them while the next tile is gathered / loaded / computed.
// Drain unit: one PE per cycle, row by row: requantize, write the int8 result
// (hwsim_act_writer) and, when acc_en, send the accumulator on the debug stream (tdata = acc
// sign-extended to 64 bits, tuser = flat NHWC index, tlast on the layer's last one).
// Read latency of every memory: the engine registers the address (cycle 0), the memory
// registers the data (cycle 1), the engine uses it in cycle 2; tags follow in t1_* / t2_*.
`default_nettype none
`include "hwsim_desc.vh"
module hwsim_mac_engine #(
    parameter ROWS = 8,
    parameter COLS = 8,
    parameter ACC_BITS = 32,
    parameter ACC_SATURATE = 0,
    parameter BIAS_FIRST = 1,
    parameter ACT_W = 64,
    parameter ACT_L = 8,
    parameter ACT_LOG2L = 3,
    parameter ACT_MSB_FIRST = 0,
    parameter ACT_AW = 17,
    parameter WGT_W = 64,
    parameter WGT_L = 8,
    parameter WGT_MSB_FIRST = 0,
    parameter WGT_AW = 16,
    parameter BIAS_W = 32,
    parameter BIAS_AW = 12,
    parameter RQ_W = 64,
    parameter RQ_AW = 12,
    parameter XBUF_DEPTH = 8192,
    parameter WBUF_WORDS = 1024,
    parameter TAPS_MAX = 64,
    parameter CH_CACHE = 1024      // channels whose bias / requant words stay resident
) (
    input  wire                           clk,
    input  wire                           rst,
    input  wire                           start,
    output reg                            done,
    output reg                            limit_error,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [`HWSIM_DESC_USED*32-1:0] desc,
    input  wire [BIAS_W-1:0]              bias_rdata,
    input  wire [RQ_W-1:0]                rq_rdata,
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire                           acc_en,
    output reg                            act_re,
    output reg  [ACT_AW-1:0]              act_raddr,
    input  wire [ACT_W-1:0]               act_rdata,
    output wire                           act_we,
    output wire [ACT_AW-1:0]              act_waddr,
    output wire [ACT_W-1:0]               act_wdata,
    output wire [ACT_L-1:0]               act_wmask,
    output reg                            wgt_re,
    output reg  [WGT_AW-1:0]              wgt_raddr,
    input  wire [WGT_W-1:0]               wgt_rdata,
    output reg                            bias_re,
    output reg  [BIAS_AW-1:0]             bias_raddr,
    output reg                            rq_re,
    output reg  [RQ_AW-1:0]               rq_raddr,
    output wire                           m_acc_tvalid,
    input  wire                           m_acc_tready,
    output wire [63:0]                    m_acc_tdata,
    output wire [31:0]                    m_acc_tuser,
    output wire                           m_acc_tlast
);
    localparam XW = 9;  // int8 + input_offset: [-255, 255]
    localparam XIDX_W = $clog2(ROWS * XBUF_DEPTH);
    localparam WIDX_W = $clog2(COLS * WBUF_WORDS);
    localparam PIDX_W = $clog2(ROWS * TAPS_MAX);
    localparam CIDX_W = (COLS > 1) ? $clog2(COLS) : 1;
    localparam PE_W = (ROWS * COLS > 1) ? $clog2(ROWS * COLS) : 1;
    localparam CH_W = $clog2(CH_CACHE);

    // ---- descriptor fields (32-bit words; some use only their low bits) ------------------
    /* verilator lint_off UNUSEDSIGNAL */
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
    wire signed [31:0] d_out_base = `HWSIM_DF(desc, `HWSIM_D_OUT_BASE);
    wire signed [31:0] d_w_base  = `HWSIM_DF(desc, `HWSIM_D_W_BASE);
    wire signed [31:0] d_b_base  = `HWSIM_DF(desc, `HWSIM_D_B_BASE);
    wire signed [31:0] d_rq_base = `HWSIM_DF(desc, `HWSIM_D_RQ_BASE);
    wire signed [31:0] d_in_off  = `HWSIM_DF(desc, `HWSIM_D_INPUT_OFFSET);
    wire signed [31:0] d_out_off = `HWSIM_DF(desc, `HWSIM_D_OUTPUT_OFFSET);
    wire signed [31:0] d_act_min = `HWSIM_DF(desc, `HWSIM_D_ACT_MIN);
    wire signed [31:0] d_act_max = `HWSIM_DF(desc, `HWSIM_D_ACT_MAX);
    wire signed [31:0] d_wpc     = `HWSIM_DF(desc, `HWSIM_D_WPC);
    wire signed [31:0] d_scheme  = `HWSIM_DF(desc, `HWSIM_D_SCHEME);
    wire signed [31:0] d_round   = `HWSIM_DF(desc, `HWSIM_D_ROUNDING);
    wire signed [31:0] d_has_b   = `HWSIM_DF(desc, `HWSIM_D_HAS_BIAS);
    wire signed [31:0] d_per_ch  = `HWSIM_DF(desc, `HWSIM_D_PER_CHANNEL);
    wire signed [31:0] d_batch   = `HWSIM_DF(desc, `HWSIM_D_BATCH);
    /* verilator lint_on UNUSEDSIGNAL */

    /* verilator lint_off UNUSEDSIGNAL */  // 32-bit index arithmetic, sliced to widths
    // Effective geometry: FC = 1x1 convolution over `batch` pixels of depth in_c.
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
    wire signed [31:0] n_pix  = d_batch * e_oh * e_ow;
    wire signed [31:0] n_taps = e_kh * e_kw;
    wire signed [31:0] k_len  = is_dw ? n_taps : n_taps * e_c;

    // ---- state --------------------------------------------------------------------------
    localparam [3:0] S_IDLE = 4'd0, S_SETUP = 4'd1, S_GATHER = 4'd2, S_GWAIT = 4'd3,
                     S_WLOAD = 4'd4, S_WWAIT = 4'd5, S_LOAD = 4'd6, S_MAC = 4'd7,
                     S_BIAS = 4'd8, S_MWAIT = 4'd9, S_NEXT = 4'd10, S_DEND = 4'd11,
                     S_FLUSH = 4'd12, S_FWAIT = 4'd13, S_DONE = 4'd14;
    reg [3:0] state;

    reg signed [31:0] pt, ct;                 // tile: first pixel, first channel
    reg signed [31:0] t_n, t_oy, t_ox;        // coordinates of pixel pt
    reg signed [31:0] ct_ic, ct_m;            // DWCONV: input channel / multiplier index of ct
    wire signed [31:0] ncols = (oc - ct < COLS) ? oc - ct : COLS;
    wire signed [31:0] nrows = (n_pix - pt < ROWS) ? n_pix - pt : ROWS;
    // weights / bias / requant words resident for the whole layer (loaded once)?
    wire w_resident = oc * d_wpc <= COLS * WBUF_WORDS && oc <= CH_CACHE;
    wire skip_wload = w_resident && pt != 32'sd0;
    wire signed [31:0] wtile_base = w_resident ? ct * d_wpc : 32'sd0;  // in the weight buffer
    wire signed [31:0] cbase = w_resident ? ct : 32'sd0;                // in the channel caches

    // DWCONV: the input channel of each column (oc = ic * depth_multiplier + m), as a slot
    // relative to the tile's first input channel ct_ic; dw_nic input channels in the tile.
    reg [COLS*32-1:0] dw_slot;
    reg signed [31:0] dw_nic, dw_next_ic, dw_next_m;
    reg signed [31:0] cic, cm;
    integer cj;
    always @* begin
        cic = ct_ic;
        cm = ct_m;
        dw_nic = 32'sd1;
        dw_slot = {COLS*32{1'b0}};
        for (cj = 0; cj < COLS; cj = cj + 1) begin
            dw_slot[cj*32 +: 32] = cic - ct_ic;
            if (ct + cj < oc) dw_nic = cic - ct_ic + 32'sd1;
            if (cm + 32'sd1 >= e_dm) begin
                cm = 32'sd0;
                cic = cic + 32'sd1;
            end else begin
                cm = cm + 32'sd1;
            end
        end
        dw_next_ic = cic;
        dw_next_m = cm;
    end

    // ---- GATHER -----------------------------------------------------------------------------
    reg signed [31:0] g_r, g_n, g_oy, g_ox, g_ky, g_kx, g_tap;
    reg               g_in_run;
    reg signed [31:0] g_cur_w, g_end_w, run_s, run_len, run_dst;
    wire signed [31:0] g_iy = g_oy * e_sh - e_pt + g_ky * e_dh;
    wire signed [31:0] g_ix = g_ox * e_sw - e_pl + g_kx * e_dw;
    wire g_row_ok = pt + g_r < n_pix;
    wire g_inside = g_row_ok && g_iy >= 0 && g_iy < e_ih && g_ix >= 0 && g_ix < e_iw;
    wire signed [31:0] g_s = ((g_n * e_ih + g_iy) * e_iw + g_ix) * e_c + (is_dw ? ct_ic : 32'sd0);
    wire signed [31:0] g_len = is_dw ? dw_nic : e_c;
    wire signed [31:0] g_dst = g_r * XBUF_DEPTH + g_tap * (is_dw ? COLS : e_c);
    wire signed [31:0] g_w0 = g_s >>> ACT_LOG2L;
    wire signed [31:0] g_w1 = (g_s + g_len - 32'sd1) >>> ACT_LOG2L;
    // The current (row, tap) is finished this cycle.
    wire g_adv = g_in_run ? (g_cur_w == g_end_w) : (!g_inside || g_w1 == g_w0);
    wire signed [31:0] g_pidx32 = g_r * TAPS_MAX + g_tap;
    wire signed [31:0] g_raddr32 = d_in_base + (g_in_run ? g_cur_w : g_w0);

    // read tags: t1 = address registered, t2 = data registered
    reg               t1_valid, t2_valid;
    reg signed [31:0] t1_w, t1_s, t1_len, t1_dst, t2_w, t2_s, t2_len, t2_dst;
    reg               pad_mem [0:ROWS*TAPS_MAX-1];
    reg signed [XW-1:0] xbuf [0:ROWS*XBUF_DEPTH-1];

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
            wire signed [7:0] v = act_rdata[PHYS*8 +: 8];
            wire signed [9:0] vx = {{2{v[7]}}, v} + d_in_off[9:0];
            assign lane_hit[gl] = t2_valid && e >= t2_s && e < t2_s + t2_len;
            assign lane_idx[gl*XIDX_W +: XIDX_W] = di[XIDX_W-1:0];
            assign lane_x[gl*XW +: XW] = vx[XW-1:0];
        end
    endgenerate

    // ---- WLOAD --------------------------------------------------------------------------
    reg signed [31:0] wl_i, bl_j;
    reg               wt1_valid, wt2_valid, bt1_valid, bt2_valid;
    reg signed [31:0] wt1_a, wt2_a, bt1_c, bt2_c;
    wire signed [31:0] wl_total = ncols * d_wpc;
    wire signed [31:0] w_addr32 = d_w_base + ct * d_wpc + wl_i;
    wire signed [31:0] b_addr32 = d_b_base + ct + bl_j;
    wire signed [31:0] r_addr32 = d_rq_base + ((d_per_ch != 0) ? ct + bl_j : 32'sd0);
    reg [WGT_W-1:0] wbuf [0:COLS*WBUF_WORDS-1];
    reg [31:0] bias_c [0:CH_CACHE-1];
    reg [63:0] rq_c [0:CH_CACHE-1];
    // cache index and weight-buffer row of each column of the current tile
    wire [COLS*CH_W-1:0] col_ch;
    wire [COLS*32-1:0] col_wrow;
    genvar gc;
    generate
        for (gc = 0; gc < COLS; gc = gc + 1) begin : g_col
            wire signed [31:0] ch = cbase + gc;
            assign col_ch[gc*CH_W +: CH_W] = ch[CH_W-1:0];
            assign col_wrow[gc*32 +: 32] = wtile_base + gc * d_wpc;
        end
    endgenerate

    // ---- MAC ----------------------------------------------------------------------------
    reg signed [31:0] c_k, c_word, c_lane, c_tap, c_ic;
    reg mac_d, load_d, bias_d;                  // array controls, one cycle after the operands
    reg [ROWS*XW-1:0] x_row;                    // operands of the step, written once per cycle
    reg [ROWS*COLS*XW-1:0] x_pe;
    reg [COLS*8-1:0] w_op;
    reg [COLS*32-1:0] init_op, bias_op;
    wire signed [ACC_BITS-1:0] rd_acc;
    wire rd_en;
    wire [PE_W-1:0] rd_sel;
    wire capture;

    // The operands of step c_k: x per row (CONV/FC) or per PE (DWCONV), pad -> 0; w per
    // column: lane c_lane of the column's weight word c_word. Functions of the buffers,
    // evaluated at the clock edge.
    /* verilator lint_off UNUSEDSIGNAL */
    function [ROWS*XW-1:0] f_x_row;
        input dummy;
        integer r;
        reg [31:0] xi, pi;
        begin
            for (r = 0; r < ROWS; r = r + 1) begin
                xi = r * XBUF_DEPTH + c_k;
                pi = r * TAPS_MAX + c_tap;
                f_x_row[r*XW +: XW] = pad_mem[pi[PIDX_W-1:0]] ? {XW{1'b0}}
                                                               : xbuf[xi[XIDX_W-1:0]];
            end
        end
    endfunction

    function [ROWS*COLS*XW-1:0] f_x_pe;
        input dummy;
        integer r, c;
        reg [31:0] xi, pi;
        begin
            for (r = 0; r < ROWS; r = r + 1) begin
                pi = r * TAPS_MAX + c_k;
                for (c = 0; c < COLS; c = c + 1) begin
                    xi = r * XBUF_DEPTH + c_k * COLS + dw_slot[c*32 +: 32];
                    f_x_pe[(r*COLS + c)*XW +: XW] =
                        pad_mem[pi[PIDX_W-1:0]] ? {XW{1'b0}} : xbuf[xi[XIDX_W-1:0]];
                end
            end
        end
    endfunction

    function [COLS*8-1:0] f_w_op;
        input dummy;
        integer c;
        reg [31:0] wi, lane;
        reg [WGT_W-1:0] word;
        begin
            lane = WGT_MSB_FIRST ? (WGT_L - 1 - c_lane) : c_lane;
            for (c = 0; c < COLS; c = c + 1) begin
                wi = col_wrow[c*32 +: 32] + c_word;
                word = wbuf[wi[WIDX_W-1:0]];
                f_w_op[c*8 +: 8] = word[lane*8 +: 8];
            end
        end
    endfunction
    /* verilator lint_on UNUSEDSIGNAL */

    integer oc_i;
    always @(posedge clk) begin
        if (state == S_MAC) begin
            if (is_dw) x_pe <= f_x_pe(1'b0);
            else x_row <= f_x_row(1'b0);
            w_op <= f_w_op(1'b0);
        end
        if (state == S_LOAD)
            for (oc_i = 0; oc_i < COLS; oc_i = oc_i + 1) begin
                init_op[oc_i*32 +: 32] <= BIAS_FIRST ? bias_c[col_ch[oc_i*CH_W +: CH_W]] : 32'd0;
                bias_op[oc_i*32 +: 32] <= bias_c[col_ch[oc_i*CH_W +: CH_W]];
            end
    end

    hwsim_mac_array #(.ROWS(ROWS), .COLS(COLS), .XW(XW), .WB(8), .ACC_BITS(ACC_BITS),
                      .SATURATE(ACC_SATURATE), .SEL_W(PE_W)) array (
        .clk(clk), .load(load_d), .mac(mac_d), .add_bias(bias_d), .init(init_op),
        .bias(bias_op), .per_pe(is_dw), .x_row(x_row), .x_pe(x_pe), .w(w_op),
        .capture(capture), .rd_en(rd_en),
        .rd_sel(rd_sel), .rd_acc(rd_acc));

    // ---- drain unit ---------------------------------------------------------------------------
    // dn_*: walks the captured tile (shadow accumulators, requant words copied at capture).
    // Pipeline: p_* (the PE's accumulator, read from the shadow, and its requant word) ->
    // o_* (requantized; offered to the writer and the accumulator stream). Both stages move
    // together when the o stage is free (the accumulator stream may stall them).
    reg               dn_active;
    reg signed [31:0] dn_r, dn_j, dn_ncols, dn_nrows, dn_row_f, o_cnt;
    reg [63:0]        dn_rq [0:COLS-1];
    reg               p_valid, o_valid;
    reg signed [31:0] p_f, o_f;
    reg signed [ACC_BITS-1:0] o_acc;
    wire signed [ACC_BITS-1:0] p_acc = rd_acc;   // registered in the array with p_*
    reg [63:0]        p_rq;
    reg [7:0]         o_q;
    /* verilator lint_off UNUSEDSIGNAL */
    wire signed [31:0] dn_pe = dn_r * COLS + dn_j;
    /* verilator lint_on UNUSEDSIGNAL */
    wire [7:0] p_q;
    hwsim_requant #(.ACC_BITS(ACC_BITS), .OUT_BITS(8)) requant (
        .acc(p_acc), .word(p_rq), .scheme(d_scheme[2:0]), .rounding(d_round[2:0]),
        .output_offset(d_out_off), .act_min(d_act_min), .act_max(d_act_max), .out(p_q));
    wire o_accept = o_valid && (!acc_en || m_acc_tready);
    wire d_adv = !o_valid || o_accept;
    wire signed [31:0] total = n_pix * oc;
    assign rd_en = dn_active && d_adv;
    assign rd_sel = dn_pe[PE_W-1:0];
    assign capture = state == S_MWAIT && !mac_d && !bias_d && !dn_active;
    assign m_acc_tvalid = o_valid && acc_en;
    assign m_acc_tdata = {{(64 - ACC_BITS){o_acc[ACC_BITS-1]}}, o_acc};
    assign m_acc_tuser = o_f;
    assign m_acc_tlast = o_cnt == total - 32'sd1;

    integer dc;
    always @(posedge clk) begin
        if (o_accept) o_cnt <= o_cnt + 32'sd1;
        if (rst) begin
            dn_active <= 1'b0;
            p_valid <= 1'b0;
            o_valid <= 1'b0;
        end else begin
            if (state == S_SETUP) o_cnt <= 32'sd0;
            if (d_adv) begin  // the drain pipeline moves
                o_valid <= p_valid;
                o_f <= p_f;
                o_q <= p_q;
                o_acc <= p_acc;
                p_valid <= dn_active;
                if (dn_active) begin
                    p_f <= dn_row_f + dn_j;
                    p_rq <= dn_rq[dn_j[CIDX_W-1:0]];
                    if (dn_j + 32'sd1 < dn_ncols) begin
                        dn_j <= dn_j + 32'sd1;
                    end else begin
                        dn_j <= 32'sd0;
                        dn_row_f <= dn_row_f + oc;
                        dn_r <= dn_r + 32'sd1;
                        if (dn_r + 32'sd1 >= dn_nrows) dn_active <= 1'b0;
                    end
                end
            end
            if (capture) begin
                dn_active <= 1'b1;
                dn_r <= 32'sd0;
                dn_j <= 32'sd0;
                dn_ncols <= ncols;
                dn_nrows <= nrows;
                dn_row_f <= pt * oc + ct;
                for (dc = 0; dc < COLS; dc = dc + 1)
                    dn_rq[dc] <= rq_c[col_ch[dc*CH_W +: CH_W]];
            end
        end
    end

    reg w_flush;
    hwsim_act_writer #(.WIDTH(ACT_W), .LANES(ACT_L), .LOG2_LANES(ACT_LOG2L), .ELEM_BITS(8),
                       .LANE_MSB_FIRST(ACT_MSB_FIRST), .AW(ACT_AW)) writer (
        .clk(clk), .rst(rst), .base(d_out_base), .in_valid(o_accept), .in_index(o_f),
        .in_value(o_q), .flush(w_flush), .we(act_we), .waddr(act_waddr), .wdata(act_wdata),
        .wmask(act_wmask));

    // ---- limits ---------------------------------------------------------------------------
    wire over_limits = (is_dw ? (n_taps * COLS > XBUF_DEPTH) : (k_len > XBUF_DEPTH))
                       || n_taps > TAPS_MAX || d_wpc > WBUF_WORDS || d_wpc * WGT_L < k_len
                       || n_pix < 1 || oc < 1 || k_len < 1;

    // ---- data stages (memory read data lands here) -------------------------------------------
    integer l;
    always @(posedge clk) begin
        t2_valid <= t1_valid && !rst;
        t2_w <= t1_w;
        t2_s <= t1_s;
        t2_len <= t1_len;
        t2_dst <= t1_dst;
        wt2_valid <= wt1_valid && !rst;
        wt2_a <= wt1_a;
        bt2_valid <= bt1_valid && !rst;
        bt2_c <= bt1_c;
        for (l = 0; l < ACT_L; l = l + 1)
            if (lane_hit[l]) xbuf[lane_idx[l*XIDX_W +: XIDX_W]] <= lane_x[l*XW +: XW];
        if (wt2_valid) wbuf[wt2_a[WIDX_W-1:0]] <= wgt_rdata;
        if (bt2_valid) begin
            bias_c[bt2_c[CH_W-1:0]] <= (d_has_b != 0) ? bias_rdata[31:0] : 32'd0;
            rq_c[bt2_c[CH_W-1:0]] <= rq_rdata[63:0];
        end
    end

    // ---- control ----------------------------------------------------------------------------
    always @(posedge clk) begin
        done <= 1'b0;
        act_re <= 1'b0;
        wgt_re <= 1'b0;
        bias_re <= 1'b0;
        rq_re <= 1'b0;
        t1_valid <= 1'b0;
        wt1_valid <= 1'b0;
        bt1_valid <= 1'b0;
        mac_d <= 1'b0;
        load_d <= 1'b0;
        bias_d <= 1'b0;
        w_flush <= 1'b0;
        if (rst) begin
            state <= S_IDLE;
            limit_error <= 1'b0;
            g_in_run <= 1'b0;
        end else begin
            case (state)
            S_IDLE: if (start) begin
                limit_error <= 1'b0;
                state <= S_SETUP;
            end
            S_SETUP: begin
                pt <= 32'sd0;
                ct <= 32'sd0;
                ct_ic <= 32'sd0;
                ct_m <= 32'sd0;
                t_n <= 32'sd0;
                t_oy <= 32'sd0;
                t_ox <= 32'sd0;
                if (over_limits) begin
                    limit_error <= 1'b1;
                    state <= S_DONE;
                end else begin
                    g_r <= 32'sd0;
                    g_n <= 32'sd0;
                    g_oy <= 32'sd0;
                    g_ox <= 32'sd0;
                    g_ky <= 32'sd0;
                    g_kx <= 32'sd0;
                    g_tap <= 32'sd0;
                    g_in_run <= 1'b0;
                    state <= S_GATHER;
                end
            end
            S_GATHER: begin
                if (!g_in_run) pad_mem[g_pidx32[PIDX_W-1:0]] <= !g_inside;
                if (g_in_run || g_inside) begin
                    act_re <= 1'b1;
                    act_raddr <= g_raddr32[ACT_AW-1:0];
                    t1_valid <= 1'b1;
                    t1_w <= g_in_run ? g_cur_w : g_w0;
                    t1_s <= g_in_run ? run_s : g_s;
                    t1_len <= g_in_run ? run_len : g_len;
                    t1_dst <= g_in_run ? run_dst : g_dst;
                end
                if (!g_in_run && g_inside && g_w1 != g_w0) begin
                    g_in_run <= 1'b1;
                    g_cur_w <= g_w0 + 32'sd1;
                    g_end_w <= g_w1;
                    run_s <= g_s;
                    run_len <= g_len;
                    run_dst <= g_dst;
                end else if (g_in_run && !g_adv) begin
                    g_cur_w <= g_cur_w + 32'sd1;
                end
                if (g_adv) begin
                    g_in_run <= 1'b0;
                    if (g_kx + 32'sd1 < e_kw) begin
                        g_kx <= g_kx + 32'sd1;
                        g_tap <= g_tap + 32'sd1;
                    end else if (g_ky + 32'sd1 < e_kh) begin
                        g_kx <= 32'sd0;
                        g_ky <= g_ky + 32'sd1;
                        g_tap <= g_tap + 32'sd1;
                    end else begin
                        g_kx <= 32'sd0;
                        g_ky <= 32'sd0;
                        g_tap <= 32'sd0;
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
                        if (g_r == ROWS - 1) state <= S_GWAIT;
                        else g_r <= g_r + 32'sd1;
                    end
                end
            end
            S_GWAIT: if (!t1_valid && !t2_valid) begin
                wl_i <= 32'sd0;
                bl_j <= 32'sd0;
                state <= skip_wload ? S_LOAD : S_WLOAD;
            end
            S_WLOAD: begin
                if (wl_i < wl_total) begin
                    wgt_re <= 1'b1;
                    wgt_raddr <= w_addr32[WGT_AW-1:0];
                    wt1_valid <= 1'b1;
                    wt1_a <= wtile_base + wl_i;
                    wl_i <= wl_i + 32'sd1;
                end
                if (bl_j < ncols) begin
                    bias_re <= 1'b1;
                    bias_raddr <= b_addr32[BIAS_AW-1:0];
                    rq_re <= 1'b1;
                    rq_raddr <= r_addr32[RQ_AW-1:0];
                    bt1_valid <= 1'b1;
                    bt1_c <= cbase + bl_j;
                    bl_j <= bl_j + 32'sd1;
                end
                if (wl_i + 32'sd1 >= wl_total && bl_j + 32'sd1 >= ncols) state <= S_WWAIT;
            end
            S_WWAIT: if (!wt1_valid && !wt2_valid && !bt1_valid && !bt2_valid) state <= S_LOAD;
            S_LOAD: begin
                load_d <= 1'b1;
                c_k <= 32'sd0;
                c_word <= 32'sd0;
                c_lane <= 32'sd0;
                c_tap <= 32'sd0;
                c_ic <= 32'sd0;
                state <= S_MAC;
            end
            S_MAC: begin
                // operands of step c_k are registered now (x_row / x_pe, w_op); the array
                // adds them next cycle (mac_d)
                mac_d <= 1'b1;
                c_k <= c_k + 32'sd1;
                if (c_lane + 32'sd1 < WGT_L) begin
                    c_lane <= c_lane + 32'sd1;
                end else begin
                    c_lane <= 32'sd0;
                    c_word <= c_word + 32'sd1;
                end
                if (c_ic + 32'sd1 < e_c) begin
                    c_ic <= c_ic + 32'sd1;
                end else begin
                    c_ic <= 32'sd0;
                    c_tap <= c_tap + 32'sd1;
                end
                if (c_k + 32'sd1 >= k_len) state <= BIAS_FIRST ? S_MWAIT : S_BIAS;
            end
            S_BIAS: begin
                bias_d <= 1'b1;
                state <= S_MWAIT;
            end
            S_MWAIT: if (capture) state <= S_NEXT;
            S_NEXT: begin
                g_r <= 32'sd0;
                g_ky <= 32'sd0;
                g_kx <= 32'sd0;
                g_tap <= 32'sd0;
                g_in_run <= 1'b0;
                wl_i <= 32'sd0;
                bl_j <= 32'sd0;
                if (ct + COLS < oc) begin
                    ct <= ct + COLS;
                    ct_ic <= dw_next_ic;
                    ct_m <= dw_next_m;
                    if (is_dw) begin
                        // DWCONV re-gathers the same pixels for the new channels
                        g_n <= t_n;
                        g_oy <= t_oy;
                        g_ox <= t_ox;
                        state <= S_GATHER;
                    end else begin
                        state <= skip_wload ? S_LOAD : S_WLOAD;
                    end
                end else begin
                    // next pixel tile: the gather left g_* at its first pixel
                    ct <= 32'sd0;
                    ct_ic <= 32'sd0;
                    ct_m <= 32'sd0;
                    pt <= pt + ROWS;
                    t_n <= g_n;
                    t_oy <= g_oy;
                    t_ox <= g_ox;
                    state <= (pt + ROWS < n_pix) ? S_GATHER : S_DEND;
                end
            end
            S_DEND: if (!dn_active && !p_valid && !o_valid && !capture) state <= S_FLUSH;
            S_FLUSH: begin
                w_flush <= 1'b1;
                state <= S_FWAIT;
            end
            S_FWAIT: if (!w_flush) state <= S_DONE;
            S_DONE: begin
                done <= 1'b1;
                state <= S_IDLE;
            end
            default: state <= S_IDLE;
            endcase
        end
    end

    initial begin
        state = S_IDLE;
        o_valid = 1'b0;
        p_valid = 1'b0;
        dn_active = 1'b0;
        t1_valid = 1'b0;
        wt1_valid = 1'b0;
        bt1_valid = 1'b0;
        o_cnt = 32'sd0;
    end
endmodule
`default_nettype wire
