// hwsim_elem_engine: the layers that do not use the MAC array, ACT_L lanes wide.
//   ADD      word by word: the word of input 1, then the word of input 2 (the activation
//   SUB      memory has one read port: two cycles per word), ACT_L hwsim_add_lane units compute
//   MUL      the lanes, the output word is written (lanes past the end masked).
//   TABLE    the layer's 2^b-entry table is loaded from the weight memory (one word of WGT_L
//            entries per cycle) into hwsim_lut, then one word per cycle: read, look up every
//            lane, write.
//   MAXPOOL  one lane group (ACT_L consecutive channels of one output pixel) at a time, one
//   AVGPOOL  window tap per cycle over the taps inside the image (the rectangle ky_lo..ky_hi x
//            kx_lo..kx_hi, as hwsim_gather walks it: the taps in the padding are skipped, a
//            window with none inside takes one cycle and reads nothing; a tap whose channels
//            straddle two words takes two), then the
//            max, or the rounded average (sum +- n/2) / n with C division over the n taps inside
//            the image, clamped to [act_min, act_max] (hwsim kernels/elementwise.py _pool2d);
//            the group goes to hwsim_vec_writer as one vector.
//   RESIZE   RESIZE_NEAREST_NEIGHBOR as address generation: the layer's source row of every
//            output row and source column of every output column (out_h + out_w 16-bit
//            entries, two int8 weight lanes each, low byte first) are loaded from the weight
//            memory, then the pool walk with a 1 x 1 window reads, for output pixel (oy, ox),
//            input pixel (y_index[oy], x_index[ox]) and writes its channels unchanged.
//   MEAN     over H and W (global average): the pool walk with an H x W window, then TFLite
//            MEAN's requantization of the sum: clamp(MBQM(sum + input_offset * n, M, shift)
//            + output_offset) (hwsim kernels/elementwise.py _mean_rows; M and shift, 1/n
//            folded in by lowering, in requant word 0).
// Same read latency convention as hwsim_mac_engine (address, data, use: tags t1 / t2).
`default_nettype none
`include "hwsim_desc.vh"
module hwsim_elem_engine #(
    parameter ACT_W = 64,
    parameter ACT_L = 8,
    parameter ACT_LOG2L = 3,
    parameter ACT_EB = 8,
    parameter ACT_MSB_FIRST = 0,
    parameter ACT_AW = 17,
    parameter IN_BITS = 8,
    parameter IN_SIGNED = 1,
    parameter OUT_BITS = 8,
    parameter OUT_SIGNED = 1,
    parameter WGT_W = 64,
    parameter WGT_L = 8,
    parameter WGT_EB = 8,
    parameter WGT_MSB_FIRST = 0,
    parameter WGT_AW = 16
) (
    input  wire                           clk,
    input  wire                           rst,
    input  wire                           start,
    output reg                            done,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [`HWSIM_DESC_USED*32-1:0] desc,
    input  wire [63:0]                    rq0,     // ADD: requant word 0 (output M / shift)
    /* verilator lint_on UNUSEDSIGNAL */
    output reg                            act_re,
    output reg  [ACT_AW-1:0]              act_raddr,
    input  wire [ACT_W-1:0]               act_rdata,
    output wire                           act_we,
    output wire [ACT_AW-1:0]              act_waddr,
    output wire [ACT_W-1:0]               act_wdata,
    output wire [ACT_L-1:0]               act_wmask,
    output reg                            wgt_re,   // TABLE: the table's words
    output reg  [WGT_AW-1:0]              wgt_raddr,
    input  wire [WGT_W-1:0]               wgt_rdata
);
`include "hwsim_arith.vh"
    /* verilator lint_off UNUSEDSIGNAL */  // 32-bit fields and index arithmetic, sliced
    wire signed [31:0] d_op       = `HWSIM_DF(desc, `HWSIM_D_OP);
    wire signed [31:0] d_in_h     = `HWSIM_DF(desc, `HWSIM_D_IN_H);
    wire signed [31:0] d_in_w     = `HWSIM_DF(desc, `HWSIM_D_IN_W);
    wire signed [31:0] d_in_c     = `HWSIM_DF(desc, `HWSIM_D_IN_C);
    wire signed [31:0] d_out_h    = `HWSIM_DF(desc, `HWSIM_D_OUT_H);
    wire signed [31:0] d_out_w    = `HWSIM_DF(desc, `HWSIM_D_OUT_W);
    wire signed [31:0] d_kh       = `HWSIM_DF(desc, `HWSIM_D_KH);
    wire signed [31:0] d_kw       = `HWSIM_DF(desc, `HWSIM_D_KW);
    wire signed [31:0] d_sh       = `HWSIM_DF(desc, `HWSIM_D_STRIDE_H);
    wire signed [31:0] d_sw       = `HWSIM_DF(desc, `HWSIM_D_STRIDE_W);
    wire signed [31:0] d_pt       = `HWSIM_DF(desc, `HWSIM_D_PAD_TOP);
    wire signed [31:0] d_pl       = `HWSIM_DF(desc, `HWSIM_D_PAD_LEFT);
    wire signed [31:0] d_in_base  = `HWSIM_DF(desc, `HWSIM_D_IN_BASE);
    wire signed [31:0] d_in2_base = `HWSIM_DF(desc, `HWSIM_D_IN2_BASE);
    wire signed [31:0] d_out_base = `HWSIM_DF(desc, `HWSIM_D_OUT_BASE);
    wire signed [31:0] d_in_off   = `HWSIM_DF(desc, `HWSIM_D_INPUT_OFFSET);
    wire signed [31:0] d_in2_off  = `HWSIM_DF(desc, `HWSIM_D_INPUT2_OFFSET);
    wire signed [31:0] d_out_off  = `HWSIM_DF(desc, `HWSIM_D_OUTPUT_OFFSET);
    wire signed [31:0] d_act_min  = `HWSIM_DF(desc, `HWSIM_D_ACT_MIN);
    wire signed [31:0] d_act_max  = `HWSIM_DF(desc, `HWSIM_D_ACT_MAX);
    wire signed [31:0] d_lshift   = `HWSIM_DF(desc, `HWSIM_D_ADD_LSHIFT);
    wire signed [31:0] d_m1       = `HWSIM_DF(desc, `HWSIM_D_ADD_M1);
    wire signed [31:0] d_s1       = `HWSIM_DF(desc, `HWSIM_D_ADD_S1);
    wire signed [31:0] d_m2       = `HWSIM_DF(desc, `HWSIM_D_ADD_M2);
    wire signed [31:0] d_s2       = `HWSIM_DF(desc, `HWSIM_D_ADD_S2);
    wire signed [31:0] d_scheme   = `HWSIM_DF(desc, `HWSIM_D_SCHEME);
    wire signed [31:0] d_batch    = `HWSIM_DF(desc, `HWSIM_D_BATCH);
    wire signed [31:0] d_w_base   = `HWSIM_DF(desc, `HWSIM_D_W_BASE);
    wire is_add = d_op == `HWSIM_OP_ADD;
    wire is_sub = d_op == `HWSIM_OP_SUB;
    wire is_mul = d_op == `HWSIM_OP_MUL;
    wire is_table = d_op == `HWSIM_OP_TABLE;
    wire is_avg = d_op == `HWSIM_OP_AVGPOOL;
    wire is_mean = d_op == `HWSIM_OP_MEAN;
    wire is_resize = d_op == `HWSIM_OP_RESIZE;
    wire two_in = is_add || is_sub || is_mul;      // word by word, two inputs
    wire is_word = two_in || is_table;             // word by word
    /* verilator lint_on UNUSEDSIGNAL */

    localparam [3:0] S_IDLE = 4'd0, S_ADD = 4'd1, S_POOL = 4'd2, S_WAIT = 4'd3,
                     S_FLUSH = 4'd4, S_FWAIT = 4'd5, S_DONE = 4'd6, S_TLOAD = 4'd7,
                     S_RLOAD = 4'd8, S_RWAIT = 4'd9;
    reg [3:0] state;

    // value of lane l of a word: IN_BITS of the EB-bit lane, sign- or zero-extended
    function signed [31:0] f_lane;
        input [ACT_W-1:0] word;
        input integer l;
        reg [IN_BITS-1:0] v;
        begin
            v = word[(ACT_MSB_FIRST ? (ACT_L - 1 - l) : l) * ACT_EB +: IN_BITS];
            f_lane = $signed({{(32 - IN_BITS){IN_SIGNED != 0 && v[IN_BITS-1]}}, v});
        end
    endfunction

    // an output value (inside [act_min, act_max]) in an EB-bit lane
    /* verilator lint_off UNUSEDSIGNAL */  // the extension is one bit wider than the lane
    function [ACT_EB-1:0] f_out_lane;
        input [31:0] v;
        reg [ACT_EB:0] x;
        begin
            x = {{(ACT_EB - OUT_BITS + 1){OUT_SIGNED != 0 && v[OUT_BITS-1]}}, v[OUT_BITS-1:0]};
            f_out_lane = x[ACT_EB-1:0];
        end
    endfunction
    /* verilator lint_on UNUSEDSIGNAL */

    // ---- ADD ------------------------------------------------------------------------------
    /* verilator lint_off UNUSEDSIGNAL */  // 32-bit index arithmetic, sliced to widths
    wire signed [31:0] n_elems = d_batch * d_in_h * d_in_w * d_in_c;
    wire signed [31:0] n_words = (n_elems + ACT_L - 1) >>> ACT_LOG2L;
    reg signed [31:0] a_i;
    reg               a_second;                // next read: input 2 of word a_i
    reg               at1_valid, at1_b, at2_valid, at2_b;
    reg signed [31:0] at1_w, at2_w;
    reg [ACT_W-1:0]   a_word;
    wire signed [31:0] a_addr32 = (a_second ? d_in2_base : d_in_base) + a_i;
    wire signed [31:0] add_waddr32 = d_out_base + at2_w;
    /* verilator lint_on UNUSEDSIGNAL */
    wire [ACT_L*ACT_EB-1:0] add_out;
    wire [1:0] lane_op = is_mul ? 2'd2 : (is_sub ? 2'd1 : 2'd0);
    genvar gl;
    generate
        for (gl = 0; gl < ACT_L; gl = gl + 1) begin : g_add
            localparam integer PHYS = ACT_MSB_FIRST ? (ACT_L - 1 - gl) : gl;
            wire [OUT_BITS-1:0] q;
            hwsim_add_lane #(.IN_BITS(IN_BITS), .IN_SIGNED(IN_SIGNED), .OUT_BITS(OUT_BITS)) lane (
                .a(a_word[PHYS*ACT_EB +: IN_BITS]), .b(act_rdata[PHYS*ACT_EB +: IN_BITS]),
                .op(lane_op),
                .input1_offset(d_in_off), .input2_offset(d_in2_off),
                .left_shift(d_lshift[4:0]),
                .input1_multiplier(d_m1), .input1_shift(d_s1[7:0]),
                .input2_multiplier(d_m2), .input2_shift(d_s2[7:0]),
                .output_multiplier(rq0[31:0]), .output_shift(rq0[39:32]),
                .single(d_scheme == 32'sd1),
                .output_offset(d_out_off), .act_min(d_act_min), .act_max(d_act_max),
                .out(q));
            /* verilator lint_off UNUSEDSIGNAL */
            wire [ACT_EB:0] qx = {{(ACT_EB - OUT_BITS + 1){OUT_SIGNED != 0 && q[OUT_BITS-1]}}, q};
            /* verilator lint_on UNUSEDSIGNAL */
            assign add_out[PHYS*ACT_EB +: ACT_EB] = qx[ACT_EB-1:0];
        end
    endgenerate
    // ---- TABLE: t_i = next table word to read; tt1 / tt2 the read's tags ----------------------
    localparam integer TBL_N = 1 << ((IN_BITS > 8) ? 1 : IN_BITS);
    localparam integer TBL_WORDS = (TBL_N + WGT_L - 1) / WGT_L;
    reg [15:0]        t_i;
    reg               tt1_valid, tt2_valid;
    reg [15:0]        tt1_w, tt2_w;
    /* verilator lint_off UNUSEDSIGNAL */
    wire signed [31:0] t_addr32 = d_w_base + {16'd0, t_i};
    /* verilator lint_on UNUSEDSIGNAL */
    wire [ACT_L*ACT_EB-1:0] lut_out;
    hwsim_lut #(.IN_BITS(IN_BITS), .IN_SIGNED(IN_SIGNED), .OUT_BITS(OUT_BITS),
                .OUT_SIGNED(OUT_SIGNED), .L(ACT_L), .EB(ACT_EB), .WGT_W(WGT_W), .WGT_L(WGT_L),
                .WGT_EB(WGT_EB), .WGT_MSB_FIRST(WGT_MSB_FIRST)) lut (
        .clk(clk), .ld(tt2_valid && is_table), .ld_word(tt2_w), .ld_data(wgt_rdata),
        .x(act_rdata[ACT_L*ACT_EB-1:0]), .y(lut_out));

    reg               add_we;
    reg [ACT_AW-1:0]  add_waddr;
    reg [ACT_W-1:0]   add_wdata;
    reg [ACT_L-1:0]   add_wmask;
    reg [ACT_L-1:0]   add_mask_c;
    integer ml;
    always @* begin
        for (ml = 0; ml < ACT_L; ml = ml + 1)
            add_mask_c[ACT_MSB_FIRST ? (ACT_L - 1 - ml) : ml] =
                ((at2_w <<< ACT_LOG2L) + ml) < n_elems;
    end

    // ---- RESIZE: the index table, RIDX_N 16-bit entries (y_index, then x_index) -------------
    localparam integer RIDX_AW = 11;
    localparam integer RIDX_N = 1 << RIDX_AW;      // out_h + out_w <= 2048 (export checks)
    reg [15:0] ridx [0:RIDX_N-1];
    /* verilator lint_off UNUSEDSIGNAL */
    wire signed [31:0] r_entries = d_out_h + d_out_w;
    wire signed [31:0] r_words = (2 * r_entries + WGT_L - 1) / WGT_L;
    wire signed [31:0] p_rx = d_out_h + p_ox;
    wire signed [31:0] rb0 = {16'd0, tt2_w} * WGT_L;   // byte index of the word's lane 0
    /* verilator lint_on UNUSEDSIGNAL */
    // the entry of byte index b (two bytes an entry)
    /* verilator lint_off UNUSEDSIGNAL */
    function [RIDX_AW-1:0] f_rent;
        input [31:0] b;
        f_rent = b[RIDX_AW:1];
    endfunction
    /* verilator lint_on UNUSEDSIGNAL */
    integer rl;
    always @(posedge clk) begin
        if (tt2_valid && is_resize) begin
            for (rl = 0; rl < WGT_L; rl = rl + 1) begin
                if (rb0 + rl < 2 * r_entries) begin
                    if ((rb0[0] ^ rl[0]) != 1'b0)
                        ridx[f_rent(rb0 + rl)][15:8] <=
                            wgt_rdata[(WGT_MSB_FIRST ? (WGT_L - 1 - rl) : rl) * WGT_EB +: 8];
                    else
                        ridx[f_rent(rb0 + rl)][7:0] <=
                            wgt_rdata[(WGT_MSB_FIRST ? (WGT_L - 1 - rl) : rl) * WGT_EB +: 8];
                end
            end
        end
    end

    // ---- MAXPOOL / AVGPOOL: output pixel (p_n, p_oy, p_ox), lane group p_g, tap (p_ky, p_kx) --
    /* verilator lint_off UNUSEDSIGNAL */  // 32-bit index arithmetic, sliced to widths
    reg signed [31:0] p_n, p_oy, p_ox, p_g, p_ky, p_kx, p_of;
    reg p_sub;                                    // the second word of a straddling tap
    reg p_gstart;                                 // the group's first tap: (ky_lo, kx_lo)
    wire signed [31:0] p_cb = p_g <<< ACT_LOG2L;  // first channel of the group
    wire signed [31:0] p_glen = (d_in_c - p_cb < ACT_L) ? d_in_c - p_cb : ACT_L;
    // the window's taps inside the image (RESIZE: its one tap, always inside)
    wire signed [31:0] p_by = p_oy * d_sh - d_pt;
    wire signed [31:0] p_bx = p_ox * d_sw - d_pl;
    wire signed [31:0] p_ky_lo = (is_resize || p_by >= 0) ? 32'sd0 : -p_by;
    wire signed [31:0] p_kx_lo = (is_resize || p_bx >= 0) ? 32'sd0 : -p_bx;
    wire signed [31:0] p_ky_hi = (is_resize || d_in_h - p_by >= d_kh) ? d_kh - 32'sd1
                                                                      : d_in_h - 32'sd1 - p_by;
    wire signed [31:0] p_kx_hi = (is_resize || d_in_w - p_bx >= d_kw) ? d_kw - 32'sd1
                                                                      : d_in_w - 32'sd1 - p_bx;
    wire p_empty = p_ky_lo > p_ky_hi || p_kx_lo > p_kx_hi;
    wire signed [31:0] c_ky = p_gstart ? p_ky_lo : p_ky;   // the tap of this cycle
    wire signed [31:0] c_kx = p_gstart ? p_kx_lo : p_kx;
    wire signed [31:0] p_iy = is_resize ? {16'd0, ridx[p_oy[RIDX_AW-1:0]]} : p_by + c_ky;
    wire signed [31:0] p_ix = is_resize ? {16'd0, ridx[p_rx[RIDX_AW-1:0]]} : p_bx + c_kx;
    wire p_inside = p_iy >= 0 && p_iy < d_in_h && p_ix >= 0 && p_ix < d_in_w;
    wire signed [31:0] p_e0 = ((p_n * d_in_h + p_iy) * d_in_w + p_ix) * d_in_c + p_cb;
    wire signed [31:0] p_w0 = p_e0 >>> ACT_LOG2L;
    wire signed [31:0] p_w1 = (p_e0 + p_glen - 32'sd1) >>> ACT_LOG2L;
    wire p_split = p_inside && p_w1 != p_w0 && !p_sub;
    wire signed [31:0] p_addr32 = d_in_base + (p_sub ? p_w1 : p_w0);
    wire p_first_tap = p_gstart;
    wire p_last_tap = p_empty || (c_kx >= p_kx_hi && c_ky >= p_ky_hi);
    wire p_last_group = (p_g + 32'sd1) * ACT_L >= d_in_c && (p_ox + 32'sd1 >= d_out_w)
                        && (p_oy + 32'sd1 >= d_out_h) && (p_n + 32'sd1 >= d_batch);
    /* verilator lint_on UNUSEDSIGNAL */
    reg               pt1_valid, pt1_inside, pt1_init, pt1_tap_end, pt1_end;
    reg signed [31:0] pt1_e0, pt1_len, pt1_w, pt1_of;
    reg               pt2_valid, pt2_inside, pt2_init, pt2_tap_end, pt2_end;
    reg signed [31:0] pt2_e0, pt2_len, pt2_w, pt2_of;
    reg signed [31:0] acc_max [0:ACT_L-1];
    reg signed [31:0] acc_sum [0:ACT_L-1];
    reg signed [31:0] acc_cnt;
    // output FIFO to the writer (a straddling output group takes the writer two cycles)
    reg [31:0]             of_f [0:3];
    reg [31:0]             of_n [0:3];
    reg [ACT_L*ACT_EB-1:0] of_d [0:3];
    reg [1:0] of_wr, of_rd;
    reg [2:0] of_cnt;
    wire pw_ready;
    wire pool_pop = of_cnt != 3'd0 && pw_ready;
    wire pool_hold = of_cnt >= 3'd2;              // room for the outputs of reads in flight

    // the lanes of a read merged into the group's running max / sum
    reg signed [31:0] mx_next [0:ACT_L-1];
    reg signed [31:0] sm_next [0:ACT_L-1];
    reg signed [31:0] cnt_next;
    reg [ACT_L*ACT_EB-1:0] pool_vec;
    integer vl;
    reg signed [31:0] e, v, pv, half, mag, mn;
    reg hit;
    always @* begin
        cnt_next = (pt2_init ? 32'sd0 : acc_cnt) + ((pt2_tap_end && pt2_inside) ? 32'sd1 : 32'sd0);
        half = cnt_next >>> 1;
        pool_vec = {ACT_L*ACT_EB{1'b0}};
        for (vl = 0; vl < ACT_L; vl = vl + 1) begin
            e = pt2_e0 + vl;
            hit = pt2_inside && vl < pt2_len && (e >>> ACT_LOG2L) == pt2_w;
            v = f_lane(act_rdata, e & (ACT_L - 1));
            mx_next[vl] = pt2_init ? (hit ? v : -32'sd2147483647 - 32'sd1)
                                   : ((hit && v > acc_max[vl]) ? v : acc_max[vl]);
            sm_next[vl] = (pt2_init ? 32'sd0 : acc_sum[vl]) + (hit ? v : 32'sd0);
            // average: (sum > 0 ? sum + n/2 : sum - n/2) / n, C division (toward zero)
            mag = (sm_next[vl] > 0) ? sm_next[vl] + half : sm_next[vl] - half;
            pv = is_avg ? ((cnt_next != 0) ? mag / cnt_next : 32'sd0) : mx_next[vl];
            mn = sm_next[vl] + d_in_off * cnt_next;
            if (is_mean) begin  // int32 sum less zp * n (wraps as in C++), rescaled
                pv = ((d_scheme == 32'sd1) ? f_mbqm_single(mn, rq0[31:0], rq0[39:32])
                                           : f_mbqm_double(mn, rq0[31:0], rq0[39:32]))
                     + d_out_off;
            end
            pv = (pv < d_act_min) ? d_act_min : ((pv > d_act_max) ? d_act_max : pv);
            pool_vec[vl*ACT_EB +: ACT_EB] = f_out_lane(pv);
        end
    end

    wire              pw_we;
    wire [ACT_AW-1:0] pw_waddr;
    wire [ACT_W-1:0]  pw_wdata;
    wire [ACT_L-1:0]  pw_wmask;
    wire              pw_busy;
    reg               p_flush;
    hwsim_vec_writer #(.VL(ACT_L), .EB(ACT_EB), .WIDTH(ACT_W), .LANES(ACT_L),
                       .LOG2_LANES(ACT_LOG2L), .LANE_MSB_FIRST(ACT_MSB_FIRST), .AW(ACT_AW)) writer (
        .clk(clk), .rst(rst), .base(d_out_base), .in_valid(of_cnt != 3'd0),
        .in_ready(pw_ready), .in_index(of_f[of_rd]), .in_count(of_n[of_rd]),
        .in_data(of_d[of_rd]), .flush(p_flush), .busy(pw_busy), .we(pw_we), .waddr(pw_waddr),
        .wdata(pw_wdata), .wmask(pw_wmask));

    assign act_we    = is_word ? add_we : pw_we;
    assign act_waddr = is_word ? add_waddr : pw_waddr;
    assign act_wdata = is_word ? add_wdata : pw_wdata;
    assign act_wmask = is_word ? add_wmask : pw_wmask;

    // ---- data stage ---------------------------------------------------------------------------
    integer al;
    always @(posedge clk) begin
        at2_valid <= at1_valid && !rst;
        pt2_valid <= pt1_valid && !rst;
        tt2_valid <= tt1_valid && !rst;
        if (tt1_valid) tt2_w <= tt1_w;
        if (at1_valid) begin  // (the tags move only with a read: less to simulate when idle)
            at2_b <= at1_b;
            at2_w <= at1_w;
        end
        if (pt1_valid) begin
            pt2_inside <= pt1_inside;
            pt2_init <= pt1_init;
            pt2_tap_end <= pt1_tap_end;
            pt2_end <= pt1_end;
            pt2_e0 <= pt1_e0;
            pt2_len <= pt1_len;
            pt2_w <= pt1_w;
            pt2_of <= pt1_of;
        end
        add_we <= 1'b0;
        if (at2_valid && !at2_b) a_word <= act_rdata;
        if (at2_valid && at2_b) begin
            add_we <= 1'b1;
            add_waddr <= add_waddr32[ACT_AW-1:0];
            add_wdata <= {{(ACT_W - ACT_L*ACT_EB){1'b0}}, is_table ? lut_out : add_out};
            add_wmask <= add_mask_c;
        end
        if (pt2_valid) begin
            for (al = 0; al < ACT_L; al = al + 1) begin
                acc_max[al] <= mx_next[al];
                acc_sum[al] <= sm_next[al];
            end
            acc_cnt <= cnt_next;
        end
        if (rst || start) begin
            of_wr <= 2'd0;
            of_rd <= 2'd0;
            of_cnt <= 3'd0;
        end else begin
            if (pt2_valid && pt2_end) begin
                of_f[of_wr] <= pt2_of;
                of_n[of_wr] <= pt2_len;
                of_d[of_wr] <= pool_vec;
                of_wr <= of_wr + 2'd1;
            end
            if (pool_pop) of_rd <= of_rd + 2'd1;
            of_cnt <= of_cnt + ((pt2_valid && pt2_end) ? 3'd1 : 3'd0) - (pool_pop ? 3'd1 : 3'd0);
        end
    end

    // ---- control ------------------------------------------------------------------------------
    always @(posedge clk) begin
        done <= 1'b0;
        act_re <= 1'b0;
        wgt_re <= 1'b0;
        tt1_valid <= 1'b0;
        at1_valid <= 1'b0;
        pt1_valid <= 1'b0;
        p_flush <= 1'b0;
        if (rst) begin
            state <= S_IDLE;
        end else begin
            case (state)
            S_IDLE: if (start) begin
                a_i <= 32'sd0;
                a_second <= 1'b0;
                p_n <= 32'sd0;
                p_oy <= 32'sd0;
                p_ox <= 32'sd0;
                p_g <= 32'sd0;
                p_ky <= 32'sd0;
                p_kx <= 32'sd0;
                p_of <= 32'sd0;
                p_sub <= 1'b0;
                p_gstart <= 1'b1;
                t_i <= 16'd0;
                state <= is_table ? S_TLOAD : (is_resize ? S_RLOAD
                                  : (is_word ? ((n_words > 0) ? S_ADD : S_WAIT) : S_POOL));
            end
            S_TLOAD: begin
                wgt_re <= 1'b1;
                wgt_raddr <= t_addr32[WGT_AW-1:0];
                tt1_valid <= 1'b1;
                tt1_w <= t_i;
                t_i <= t_i + 16'd1;
                if ({16'd0, t_i} + 32'd1 >= TBL_WORDS) state <= (n_words > 0) ? S_ADD : S_WAIT;
            end
            S_RLOAD: begin  // the index table, one weight word per cycle, then the walk
                wgt_re <= 1'b1;
                wgt_raddr <= t_addr32[WGT_AW-1:0];
                tt1_valid <= 1'b1;
                tt1_w <= t_i;
                t_i <= t_i + 16'd1;
                if ({16'd0, t_i} + 32'sd1 >= r_words) state <= S_RWAIT;
            end
            S_RWAIT: if (!tt1_valid && !tt2_valid) state <= S_POOL;  // every index written
            S_ADD: begin
                act_re <= 1'b1;
                act_raddr <= a_addr32[ACT_AW-1:0];
                at1_valid <= 1'b1;
                at1_b <= a_second || !two_in;      // one-input ops: every read is written
                at1_w <= a_i;
                a_second <= two_in && !a_second;
                if (a_second || !two_in) begin
                    a_i <= a_i + 32'sd1;
                    if (a_i + 32'sd1 >= n_words) state <= S_WAIT;
                end
            end
            S_POOL: if (!pool_hold) begin
                act_re <= p_inside;
                act_raddr <= p_addr32[ACT_AW-1:0];
                pt1_valid <= 1'b1;
                pt1_inside <= p_inside;
                pt1_init <= p_first_tap && !p_sub;
                pt1_tap_end <= !p_split;
                pt1_end <= p_last_tap && !p_split;
                pt1_e0 <= p_e0;
                pt1_len <= p_glen;
                pt1_w <= p_sub ? p_w1 : p_w0;
                pt1_of <= p_of;
                p_gstart <= 1'b0;
                p_ky <= c_ky;
                p_kx <= c_kx;
                if (p_split) begin
                    p_sub <= 1'b1;
                end else begin
                    p_sub <= 1'b0;
                    if (!p_last_tap) begin
                        if (c_kx < p_kx_hi) begin
                            p_kx <= c_kx + 32'sd1;
                        end else begin
                            p_kx <= p_kx_lo;
                            p_ky <= c_ky + 32'sd1;
                        end
                    end else begin
                        p_gstart <= 1'b1;
                        p_of <= p_of + p_glen;
                        if ((p_g + 32'sd1) * ACT_L < d_in_c) begin
                            p_g <= p_g + 32'sd1;
                        end else begin
                            p_g <= 32'sd0;
                            if (p_ox + 32'sd1 < d_out_w) begin
                                p_ox <= p_ox + 32'sd1;
                            end else begin
                                p_ox <= 32'sd0;
                                if (p_oy + 32'sd1 < d_out_h) begin
                                    p_oy <= p_oy + 32'sd1;
                                end else begin
                                    p_oy <= 32'sd0;
                                    p_n <= p_n + 32'sd1;
                                end
                            end
                        end
                        if (p_last_group) state <= S_WAIT;
                    end
                end
            end
            S_WAIT: if (!at1_valid && !at2_valid && !pt1_valid && !pt2_valid && !tt1_valid
                        && !tt2_valid && of_cnt == 3'd0 && !pw_busy) state <= S_FLUSH;
            S_FLUSH: begin
                p_flush <= 1'b1;
                state <= S_FWAIT;
            end
            S_FWAIT: if (!p_flush && !add_we) state <= S_DONE;
            S_DONE: begin
                done <= 1'b1;
                state <= S_IDLE;
            end
            default: state <= S_IDLE;
            endcase
        end
    end

    integer i;
    initial begin
        state = S_IDLE;
        at1_valid = 1'b0;
        pt1_valid = 1'b0;
        tt1_valid = 1'b0;
        tt2_valid = 1'b0;
        wgt_re = 1'b0;
        add_we = 1'b0;
        of_cnt = 3'd0;
        of_wr = 2'd0;
        of_rd = 2'd0;
        acc_cnt = 32'sd0;
        for (i = 0; i < ACT_L; i = i + 1) begin
            acc_max[i] = 32'sd0;
            acc_sum[i] = 32'sd0;
        end
    end
endmodule
`default_nettype wire
