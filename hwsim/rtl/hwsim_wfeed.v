// hwsim_wfeed: streams each tile's weights, bias and requant words to the MAC array.
//
// Weights: for every tile (in the array's tile order), word j of each of the tile's columns,
// j = 0 .. words_per_channel - 1 (word-major: word 0 of columns 0, 1, ..., then word 1 ...), one
// weight-memory read per cycle, into one small FIFO per column. Column c uses a word for
// WGT_L consecutive k, so with COLS <= WGT_L the stream keeps pace with the array (the weights
// are read again for every pixel tile, as the dataflow model counts them). Bias and requant
// words: per tile, one read of each per column into slot (tile % 2), once tile - 2 has been
// captured (its requant words copied to the drain): slots_loaded counts the tiles whose slot
// is ready.
//
// Column read ports: col_rd[c] reads lane col_lane[c] of column c's FIFO head into col_w
// (registered, when `adv`), col_pop[c] pops it; col_empty[c]: nothing to read.
`default_nettype none
`include "hwsim_desc.vh"
module hwsim_wfeed #(
    parameter COLS = 8,
    parameter WGT_W = 64,
    parameter WGT_L = 8,
    parameter WGT_EB = 8,
    parameter WGT_MSB_FIRST = 0,
    parameter WGT_AW = 16,
    parameter W_BITS = 8,
    parameter W_SIGNED = 1,
    parameter WBX = 8,
    parameter BIAS_W = 32,
    parameter BW = 32,           // bias element bits in the bias memory word
    parameter BIAS_AW = 12,
    parameter RQ_W = 64,
    parameter RQ_AW = 12,
    parameter FD = 4             // FIFO depth (words per column)
) (
    input  wire                           clk,
    input  wire                           rst,
    input  wire                           start,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [`HWSIM_DESC_USED*32-1:0] desc,
    input  wire [BIAS_W-1:0]              bias_rdata,
    input  wire [RQ_W-1:0]                rq_rdata,
    input  wire [COLS*32-1:0]             col_lane,
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire [31:0]                    n_tiles,
    input  wire [31:0]                    tiles_captured,
    output reg  [31:0]                    slots_loaded,
    output reg                            wgt_re,
    output reg  [WGT_AW-1:0]              wgt_raddr,
    input  wire [WGT_W-1:0]               wgt_rdata,
    output reg                            bias_re,
    output reg  [BIAS_AW-1:0]             bias_raddr,
    output reg                            rq_re,
    output reg  [RQ_AW-1:0]               rq_raddr,
    input  wire                           adv,
    input  wire [COLS-1:0]                col_rd,
    input  wire [COLS-1:0]                col_pop,
    output wire [COLS-1:0]                col_empty,
    output reg  [COLS*WBX-1:0]            col_w,
    output wire [2*COLS*BW-1:0]           bias_slots,
    output wire [2*COLS*64-1:0]           rq_slots
);
    localparam CW = (COLS > 1) ? $clog2(COLS) : 1;
    localparam FW = $clog2(FD);

    /* verilator lint_off UNUSEDSIGNAL */  // 32-bit fields and index arithmetic, sliced
    wire signed [31:0] d_out_c  = `HWSIM_DF(desc, `HWSIM_D_OUT_C);
    wire signed [31:0] d_w_base = `HWSIM_DF(desc, `HWSIM_D_W_BASE);
    wire signed [31:0] d_b_base = `HWSIM_DF(desc, `HWSIM_D_B_BASE);
    wire signed [31:0] d_rq_base = `HWSIM_DF(desc, `HWSIM_D_RQ_BASE);
    wire signed [31:0] d_wpc    = `HWSIM_DF(desc, `HWSIM_D_WPC);
    wire signed [31:0] d_has_b  = `HWSIM_DF(desc, `HWSIM_D_HAS_BIAS);
    wire signed [31:0] d_per_ch = `HWSIM_DF(desc, `HWSIM_D_PER_CHANNEL);
    wire signed [31:0] oc = d_out_c;
    /* verilator lint_on UNUSEDSIGNAL */

    // ---- bias / requant words: tile bt, column bj ---------------------------------------------
    reg [31:0] bt;
    reg signed [31:0] bj, b_ct;
    reg b_active;
    wire signed [31:0] b_ncols = (oc - b_ct < COLS) ? oc - b_ct : COLS;
    /* verilator lint_off UNUSEDSIGNAL */
    wire signed [31:0] b_addr32 = d_b_base + b_ct + bj;
    wire signed [31:0] r_addr32 = d_rq_base + ((d_per_ch != 0) ? b_ct + bj : 32'sd0);
    /* verilator lint_on UNUSEDSIGNAL */
    reg bt1_valid, bt2_valid, bt1_last, bt2_last, bt1_slot, bt2_slot;
    reg [CW-1:0] bt1_c, bt2_c;
    reg [BW-1:0] bias_s [0:2*COLS-1];
    reg [63:0] rq_s [0:2*COLS-1];
    genvar gs;
    generate
        for (gs = 0; gs < 2 * COLS; gs = gs + 1) begin : g_slot
            assign bias_slots[gs*BW +: BW] = bias_s[gs];
            assign rq_slots[gs*64 +: 64] = rq_s[gs];
        end
    endgenerate

    always @(posedge clk) begin
        bias_re <= 1'b0;
        rq_re <= 1'b0;
        bt1_valid <= 1'b0;
        bt2_valid <= bt1_valid && !rst;
        bt2_last <= bt1_last;
        bt2_slot <= bt1_slot;
        bt2_c <= bt1_c;
        if (bt2_valid) begin
            bias_s[{31'd0, bt2_slot} * COLS + {{(32-CW){1'b0}}, bt2_c}] <=
                (d_has_b != 0) ? bias_rdata[BW-1:0] : {BW{1'b0}};
            rq_s[{31'd0, bt2_slot} * COLS + {{(32-CW){1'b0}}, bt2_c}] <= rq_rdata[63:0];
            if (bt2_last) slots_loaded <= slots_loaded + 32'd1;
        end
        if (rst) begin
            b_active <= 1'b0;
            slots_loaded <= 32'd0;
        end else if (start) begin
            bt <= 32'd0;
            bj <= 32'sd0;
            b_ct <= 32'sd0;
            b_active <= 1'b1;
            slots_loaded <= 32'd0;
        end else if (b_active && bt < n_tiles && bt - tiles_captured < 32'd2) begin
            bias_re <= 1'b1;
            bias_raddr <= b_addr32[BIAS_AW-1:0];
            rq_re <= 1'b1;
            rq_raddr <= r_addr32[RQ_AW-1:0];
            bt1_valid <= 1'b1;
            bt1_slot <= bt[0];
            bt1_c <= bj[CW-1:0];
            bt1_last <= bj + 32'sd1 >= b_ncols;
            if (bj + 32'sd1 < b_ncols) begin
                bj <= bj + 32'sd1;
            end else begin
                bj <= 32'sd0;
                bt <= bt + 32'd1;
                b_ct <= (b_ct + COLS < oc) ? b_ct + COLS : 32'sd0;
            end
        end
    end

    // ---- weights: tile wt, word wj, column wc ----------------------------------------------
    reg [31:0] wt;
    reg signed [31:0] wj, wc, w_ct;
    reg w_active;
    wire signed [31:0] w_ncols = (oc - w_ct < COLS) ? oc - w_ct : COLS;
    /* verilator lint_off UNUSEDSIGNAL */
    wire signed [31:0] w_addr32 = d_w_base + (w_ct + wc) * d_wpc + wj;
    /* verilator lint_on UNUSEDSIGNAL */
    reg [WGT_W-1:0] fifo [0:COLS*FD-1];
    reg [FW:0] resv [0:COLS-1];        // words issued and not popped
    reg [FW:0] avail [0:COLS-1];       // words landed and not popped
    reg [FW-1:0] wp [0:COLS-1];
    reg [FW-1:0] rp [0:COLS-1];
    reg wt1_valid, wt2_valid;
    reg [CW-1:0] wt1_c, wt2_c;
    wire [CW-1:0] wc_i = wc[CW-1:0];
    wire w_issue = w_active && wt < n_tiles && resv[wc_i] < FD;
    genvar ge;
    generate
        for (ge = 0; ge < COLS; ge = ge + 1) begin : g_empty
            assign col_empty[ge] = avail[ge] == {(FW+1){1'b0}};
        end
    endgenerate

    // lane col_lane[c] of column c's FIFO head, sign- or zero-extended
    /* verilator lint_off UNUSEDSIGNAL */
    function [WBX-1:0] f_col_w;
        input integer c;
        reg [WGT_W-1:0] hw;
        reg [31:0] lane;
        reg [W_BITS-1:0] wv;
        begin
            hw = fifo[c*FD + {{(32-FW){1'b0}}, rp[c]}];
            lane = WGT_MSB_FIRST ? (WGT_L - 1 - col_lane[c*32 +: 32]) : col_lane[c*32 +: 32];
            wv = hw[lane*WGT_EB +: W_BITS];
            f_col_w = {{(WBX - W_BITS){W_SIGNED != 0 && wv[W_BITS-1]}}, wv};
        end
    endfunction
    /* verilator lint_on UNUSEDSIGNAL */

    integer c;
    always @(posedge clk) begin
        wgt_re <= 1'b0;
        wt1_valid <= 1'b0;
        wt2_valid <= wt1_valid && !rst;
        wt2_c <= wt1_c;
        if (wt2_valid) begin
            fifo[{{(32-CW){1'b0}}, wt2_c} * FD + {{(32-FW){1'b0}}, wp[wt2_c]}] <= wgt_rdata;
            wp[wt2_c] <= wp[wt2_c] + 1'b1;
        end
        if (wt2_valid || w_issue || (adv && (|col_rd)))
        for (c = 0; c < COLS; c = c + 1) begin
            avail[c] <= avail[c] + {{FW{1'b0}}, wt2_valid && {{(32-CW){1'b0}}, wt2_c} == c}
                        - {{FW{1'b0}}, adv && col_pop[c]};
            resv[c] <= resv[c] + {{FW{1'b0}}, w_issue && {{(32-CW){1'b0}}, wc_i} == c}
                       - {{FW{1'b0}}, adv && col_pop[c]};
            if (adv && col_pop[c]) rp[c] <= rp[c] + 1'b1;
            if (adv && col_rd[c]) col_w[c*WBX +: WBX] <= f_col_w(c);
        end
        if (rst || start) begin
            for (c = 0; c < COLS; c = c + 1) begin
                avail[c] <= {(FW+1){1'b0}};
                resv[c] <= {(FW+1){1'b0}};
                wp[c] <= {FW{1'b0}};
                rp[c] <= {FW{1'b0}};
            end
            wt2_valid <= 1'b0;
            w_active <= !rst;
            wt <= 32'd0;
            wj <= 32'sd0;
            wc <= 32'sd0;
            w_ct <= 32'sd0;
        end else if (w_issue) begin
            wgt_re <= 1'b1;
            wgt_raddr <= w_addr32[WGT_AW-1:0];
            wt1_valid <= 1'b1;
            wt1_c <= wc_i;
            if (wc + 32'sd1 < w_ncols) begin
                wc <= wc + 32'sd1;
            end else begin
                wc <= 32'sd0;
                if (wj + 32'sd1 < d_wpc) begin
                    wj <= wj + 32'sd1;
                end else begin
                    wj <= 32'sd0;
                    wt <= wt + 32'd1;
                    w_ct <= (w_ct + COLS < oc) ? w_ct + COLS : 32'sd0;
                end
            end
        end
    end

    integer i;
    initial begin
        slots_loaded = 32'd0;
        b_active = 1'b0;
        w_active = 1'b0;
        bt1_valid = 1'b0;
        bt2_valid = 1'b0;
        wt1_valid = 1'b0;
        wt2_valid = 1'b0;
        wgt_re = 1'b0;
        bias_re = 1'b0;
        rq_re = 1'b0;
        col_w = {COLS*WBX{1'b0}};
        for (i = 0; i < COLS; i = i + 1) begin
            avail[i] = {(FW+1){1'b0}};
            resv[i] = {(FW+1){1'b0}};
            wp[i] = {FW{1'b0}};
            rp[i] = {FW{1'b0}};
        end
        for (i = 0; i < 2 * COLS; i = i + 1) begin
            bias_s[i] = {BW{1'b0}};
            rq_s[i] = 64'd0;
        end
    end
endmodule
`default_nettype wire
