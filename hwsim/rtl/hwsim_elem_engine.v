// hwsim_elem_engine: the layers that do not use the MAC array.
//   ADD      word by word: read the word of input 1, then of input 2, ACT_L hwsim_add_lane
//            units compute the lanes, the output word is written (lanes past the end masked).
//   MAXPOOL  element by element in NHWC order: one window tap per cycle (taps in the padding
//   AVGPOOL  are skipped), then max, or the rounded average (sum +- n/2) / n with C division,
//            clamped to [act_min, act_max] (hwsim kernels/elementwise.py _pool2d).
// Same read latency convention as hwsim_mac_engine (address, data, use: tags t1 / t2).
`default_nettype none
`include "hwsim_desc.vh"
module hwsim_elem_engine #(
    parameter ACT_W = 64,
    parameter ACT_L = 8,
    parameter ACT_LOG2L = 3,
    parameter ACT_MSB_FIRST = 0,
    parameter ACT_AW = 17
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
    output wire [ACT_L-1:0]               act_wmask
);
    /* verilator lint_off UNUSEDSIGNAL */  // 32-bit fields, some used by their low bits
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
    /* verilator lint_on UNUSEDSIGNAL */

    /* verilator lint_off UNUSEDSIGNAL */  // 32-bit index arithmetic, sliced to widths
    wire is_add = d_op == `HWSIM_OP_ADD;
    wire is_avg = d_op == `HWSIM_OP_AVGPOOL;

    localparam [2:0] S_IDLE = 3'd0, S_ADD = 3'd1, S_POOL = 3'd2, S_WAIT = 3'd3,
                     S_FLUSH = 3'd4, S_FWAIT = 3'd5, S_DONE = 3'd6;
    reg [2:0] state;

    // ---- ADD ------------------------------------------------------------------------------
    wire signed [31:0] n_elems = d_batch * d_in_h * d_in_w * d_in_c;
    wire signed [31:0] n_words = (n_elems + ACT_L - 1) >>> ACT_LOG2L;
    reg signed [31:0] a_i;
    reg               a_second;                // next read: input 2 of word a_i
    reg               at1_valid, at1_b, at2_valid, at2_b;
    reg signed [31:0] at1_w, at2_w;
    reg [ACT_W-1:0]   a_word;
    wire signed [31:0] a_addr32 = (a_second ? d_in2_base : d_in_base) + a_i;
    wire [ACT_L*8-1:0] add_out;
    genvar gl;
    generate
        for (gl = 0; gl < ACT_L; gl = gl + 1) begin : g_add
            localparam integer PHYS = ACT_MSB_FIRST ? (ACT_L - 1 - gl) : gl;
            hwsim_add_lane lane (
                .a(a_word[PHYS*8 +: 8]), .b(act_rdata[PHYS*8 +: 8]),
                .input1_offset(d_in_off), .input2_offset(d_in2_off),
                .left_shift(d_lshift[4:0]),
                .input1_multiplier(d_m1), .input1_shift(d_s1[7:0]),
                .input2_multiplier(d_m2), .input2_shift(d_s2[7:0]),
                .output_multiplier(rq0[31:0]), .output_shift(rq0[39:32]),
                .single(d_scheme == 32'sd1),
                .output_offset(d_out_off), .act_min(d_act_min), .act_max(d_act_max),
                .out(add_out[PHYS*8 +: 8]));
        end
    endgenerate
    reg               add_we;
    reg [ACT_AW-1:0]  add_waddr;
    reg [ACT_W-1:0]   add_wdata;
    reg [ACT_L-1:0]   add_wmask;
    wire signed [31:0] add_waddr32 = d_out_base + at2_w;
    reg [ACT_L-1:0] add_mask_c;
    integer ml;
    always @* begin
        for (ml = 0; ml < ACT_L; ml = ml + 1)
            add_mask_c[ACT_MSB_FIRST ? (ACT_L - 1 - ml) : ml] =
                ((at2_w <<< ACT_LOG2L) + ml) < n_elems;
    end

    // ---- MAXPOOL / AVGPOOL ----------------------------------------------------------------------
    reg signed [31:0] p_n, p_oy, p_ox, p_c, p_ky, p_kx, p_f;
    wire signed [31:0] p_iy = p_oy * d_sh - d_pt + p_ky;
    wire signed [31:0] p_ix = p_ox * d_sw - d_pl + p_kx;
    wire p_inside = p_iy >= 0 && p_iy < d_in_h && p_ix >= 0 && p_ix < d_in_w;
    wire signed [31:0] p_flat = ((p_n * d_in_h + p_iy) * d_in_w + p_ix) * d_in_c + p_c;
    wire signed [31:0] p_addr32 = d_in_base + (p_flat >>> ACT_LOG2L);
    wire p_first = p_ky == 0 && p_kx == 0;
    wire p_last_tap = (p_kx + 32'sd1 >= d_kw) && (p_ky + 32'sd1 >= d_kh);
    wire p_last_elem = p_last_tap && (p_c + 32'sd1 >= d_in_c) && (p_ox + 32'sd1 >= d_out_w)
                       && (p_oy + 32'sd1 >= d_out_h) && (p_n + 32'sd1 >= d_batch);
    reg               pt1_valid, pt1_inside, pt1_first, pt1_last;
    reg signed [31:0] pt1_lane, pt1_f;
    reg               pt2_valid, pt2_inside, pt2_first, pt2_last;
    reg signed [31:0] pt2_lane, pt2_f;
    reg signed [31:0] acc_max, acc_sum, acc_cnt;
    // value of the lane read back
    reg signed [7:0] p_v;
    integer vl;
    always @* begin
        p_v = 8'sd0;
        for (vl = 0; vl < ACT_L; vl = vl + 1)
            if (pt2_lane == vl)
                p_v = act_rdata[(ACT_MSB_FIRST ? (ACT_L - 1 - vl) : vl)*8 +: 8];
    end
    wire signed [31:0] p_vx = {{24{p_v[7]}}, p_v};
    wire signed [31:0] max_next = pt2_first ? (pt2_inside ? p_vx : -32'sd128)
                                            : ((pt2_inside && p_vx > acc_max) ? p_vx : acc_max);
    wire signed [31:0] sum_next = (pt2_first ? 32'sd0 : acc_sum) + (pt2_inside ? p_vx : 32'sd0);
    wire signed [31:0] cnt_next = (pt2_first ? 32'sd0 : acc_cnt) + (pt2_inside ? 32'sd1 : 32'sd0);
    // average: (sum > 0 ? sum + n/2 : sum - n/2) / n, C division (truncates toward zero)
    wire [31:0] sum_mag = sum_next[31] ? -sum_next : sum_next;
    wire [31:0] avg_mag = f_divu(sum_mag + {1'b0, cnt_next[31:1]}, cnt_next);
    wire signed [31:0] avg = sum_next[31] ? -$signed(avg_mag) : $signed(avg_mag);
    wire signed [31:0] pool_v = is_avg ? avg : max_next;
    wire signed [31:0] pool_q = (pool_v < d_act_min) ? d_act_min
                              : ((pool_v > d_act_max) ? d_act_max : pool_v);
    wire pool_out_valid = pt2_valid && pt2_last;

    /* verilator lint_on UNUSEDSIGNAL */
    // unsigned restoring division n / d (d > 0; d == 0 gives 0), 32 iterations
    function [31:0] f_divu;
        input [31:0] n;
        input [31:0] d;
        reg [32:0] r;
        reg [31:0] q;
        integer i;
        begin
            r = 33'd0;
            q = 32'd0;
            if (d != 32'd0) begin
                for (i = 31; i >= 0; i = i - 1) begin
                    r = {r[31:0], n[i]};
                    if (r >= {1'b0, d}) begin
                        r = r - {1'b0, d};
                        q[i] = 1'b1;
                    end
                end
            end
            f_divu = q;
        end
    endfunction

    reg p_flush;
    wire              pw_we;
    wire [ACT_AW-1:0] pw_waddr;
    wire [ACT_W-1:0]  pw_wdata;
    wire [ACT_L-1:0]  pw_wmask;
    hwsim_act_writer #(.WIDTH(ACT_W), .LANES(ACT_L), .LOG2_LANES(ACT_LOG2L), .ELEM_BITS(8),
                       .LANE_MSB_FIRST(ACT_MSB_FIRST), .AW(ACT_AW)) writer (
        .clk(clk), .rst(rst), .base(d_out_base), .in_valid(pool_out_valid), .in_index(pt2_f),
        .in_value(pool_q[7:0]), .flush(p_flush), .we(pw_we), .waddr(pw_waddr),
        .wdata(pw_wdata), .wmask(pw_wmask));

    assign act_we    = is_add ? add_we : pw_we;
    assign act_waddr = is_add ? add_waddr : pw_waddr;
    assign act_wdata = is_add ? add_wdata : pw_wdata;
    assign act_wmask = is_add ? add_wmask : pw_wmask;

    // ---- data stage ---------------------------------------------------------------------------
    always @(posedge clk) begin
        at2_valid <= at1_valid && !rst;
        at2_b <= at1_b;
        at2_w <= at1_w;
        pt2_valid <= pt1_valid && !rst;
        pt2_inside <= pt1_inside;
        pt2_first <= pt1_first;
        pt2_last <= pt1_last;
        pt2_lane <= pt1_lane;
        pt2_f <= pt1_f;
        add_we <= 1'b0;
        if (at2_valid && !at2_b) a_word <= act_rdata;
        if (at2_valid && at2_b) begin
            add_we <= 1'b1;
            add_waddr <= add_waddr32[ACT_AW-1:0];
            add_wdata <= {{(ACT_W - ACT_L*8){1'b0}}, add_out};
            add_wmask <= add_mask_c;
        end
        if (pt2_valid) begin
            acc_max <= max_next;
            acc_sum <= sum_next;
            acc_cnt <= cnt_next;
        end
    end

    // ---- control ------------------------------------------------------------------------------
    always @(posedge clk) begin
        done <= 1'b0;
        act_re <= 1'b0;
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
                p_c <= 32'sd0;
                p_ky <= 32'sd0;
                p_kx <= 32'sd0;
                p_f <= 32'sd0;
                state <= is_add ? ((n_words > 0) ? S_ADD : S_WAIT) : S_POOL;
            end
            S_ADD: begin
                act_re <= 1'b1;
                act_raddr <= a_addr32[ACT_AW-1:0];
                at1_valid <= 1'b1;
                at1_b <= a_second;
                at1_w <= a_i;
                a_second <= !a_second;
                if (a_second) begin
                    a_i <= a_i + 32'sd1;
                    if (a_i + 32'sd1 >= n_words) state <= S_WAIT;
                end
            end
            S_POOL: begin
                act_re <= p_inside;
                act_raddr <= p_addr32[ACT_AW-1:0];
                pt1_valid <= 1'b1;
                pt1_inside <= p_inside;
                pt1_first <= p_first;
                pt1_last <= p_last_tap;
                pt1_lane <= p_flat & (ACT_L - 1);
                pt1_f <= p_f;
                if (!p_last_tap) begin
                    if (p_kx + 32'sd1 < d_kw) begin
                        p_kx <= p_kx + 32'sd1;
                    end else begin
                        p_kx <= 32'sd0;
                        p_ky <= p_ky + 32'sd1;
                    end
                end else begin
                    p_kx <= 32'sd0;
                    p_ky <= 32'sd0;
                    p_f <= p_f + 32'sd1;
                    if (p_c + 32'sd1 < d_in_c) begin
                        p_c <= p_c + 32'sd1;
                    end else begin
                        p_c <= 32'sd0;
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
                    if (p_last_elem) state <= S_WAIT;
                end
            end
            S_WAIT: if (!at1_valid && !at2_valid && !pt1_valid && !pt2_valid) state <= S_FLUSH;
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

    initial begin
        state = S_IDLE;
        at1_valid = 1'b0;
        pt1_valid = 1'b0;
        add_we = 1'b0;
    end
endmodule
`default_nettype wire
