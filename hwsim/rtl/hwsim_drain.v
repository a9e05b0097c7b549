// hwsim_drain: empties the MAC array's shadow banks, one row (one output pixel, the tile's
// channels) per cycle, through COLS requantization units into the vector writer, while the
// array computes the next tile.
//
// `cap` (from the engine) copies a finished tile's accumulators into shadow bank
// (tiles_captured % 2) and, here, its requant words (wfeed slot tiles_captured % 2) and place
// (pixel tile, channel tile); bank_free says that bank has been read out. Each row goes out as
// a vector of ncols elements: the requantized values to the writer at element
// pixel * out_pix_stride + channel of the output region (out_pix_stride 0: out_c, dense; a
// CONCATENATION alias along C: the concatenated tensor's channels, out_base at this layer's
// channel offset), and the accumulators on the debug stream (acc_stream: m_acc_*, one beat per
// row, tdata = COLS accumulators sign-extended to 64 bits, tuser = {count[15:0], index[31:0]})
// and / or, in simulation, to the accumulator trace file (acc_trace, +HWSIM_TRACE_ACC=<file>:
// one line "index value" per accumulator, decimal).
`default_nettype none
`include "hwsim_desc.vh"
module hwsim_drain #(
    parameter ROWS = 8,
    parameter COLS = 8,
    parameter ACC_BITS = 32,
    parameter OUT_BITS = 8,
    parameter OUT_SIGNED = 1,
    parameter EB = 8,            // output lane bits in the activation memory
    parameter RW = 3
) (
    input  wire                           clk,
    input  wire                           rst,
    input  wire                           start,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [`HWSIM_DESC_USED*32-1:0] desc,
    input  wire [2*COLS*64-1:0]           rq_slots,
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire [31:0]                    n_tiles,
    input  wire                           cap,
    output wire                           bank_free,
    output wire                           cap_bank,
    output reg  [31:0]                    tiles_captured,
    output wire                           all_drained,
    // shadow read port of the array (rd_vec registered there)
    output wire                           rd_en,
    output wire                           rd_bank,
    output wire [RW-1:0]                  rd_row,
    input  wire [COLS*ACC_BITS-1:0]       rd_vec,
    // to the vector writer
    output wire                           w_valid,
    input  wire                           w_ready,
    output wire [31:0]                    w_index,
    output wire [31:0]                    w_count,
    output wire [COLS*EB-1:0]             w_data,
    // accumulators
    input  wire                           acc_stream,
    input  wire                           acc_trace,
    output wire                           m_acc_tvalid,
    input  wire                           m_acc_tready,
    output wire [COLS*64-1:0]             m_acc_tdata,
    output wire [47:0]                    m_acc_tuser,
    output wire                           m_acc_tlast
);
    /* verilator lint_off UNUSEDSIGNAL */  // 32-bit fields and index arithmetic, sliced
    wire signed [31:0] d_op      = `HWSIM_DF(desc, `HWSIM_D_OP);
    wire signed [31:0] d_out_h   = `HWSIM_DF(desc, `HWSIM_D_OUT_H);
    wire signed [31:0] d_out_w   = `HWSIM_DF(desc, `HWSIM_D_OUT_W);
    wire signed [31:0] d_out_c   = `HWSIM_DF(desc, `HWSIM_D_OUT_C);
    wire signed [31:0] d_out_off = `HWSIM_DF(desc, `HWSIM_D_OUTPUT_OFFSET);
    wire signed [31:0] d_act_min = `HWSIM_DF(desc, `HWSIM_D_ACT_MIN);
    wire signed [31:0] d_act_max = `HWSIM_DF(desc, `HWSIM_D_ACT_MAX);
    wire signed [31:0] d_scheme  = `HWSIM_DF(desc, `HWSIM_D_SCHEME);
    wire signed [31:0] d_round   = `HWSIM_DF(desc, `HWSIM_D_ROUNDING);
    wire signed [31:0] d_batch   = `HWSIM_DF(desc, `HWSIM_D_BATCH);
    wire signed [31:0] d_pstride = `HWSIM_DF(desc, `HWSIM_D_OUT_PSTRIDE);
    wire is_fc = d_op == `HWSIM_OP_FC;
    wire signed [31:0] oc = d_out_c;
    wire signed [31:0] ps = (d_pstride != 32'sd0) ? d_pstride : d_out_c;   // writer's pixel step
    wire signed [31:0] n_pix = is_fc ? d_batch : d_batch * d_out_h * d_out_w;
    /* verilator lint_on UNUSEDSIGNAL */

    // ---- banks: the captured tiles, in order --------------------------------------------------
    reg [31:0] tiles_drained;
    reg signed [31:0] c_pt, c_ct;                 // place of the next tile to capture
    reg bank_full [0:1];
    reg signed [31:0] bank_pt [0:1];
    reg signed [31:0] bank_ct [0:1];
    reg [63:0] bank_rq [0:2*COLS-1];
    assign cap_bank = tiles_captured[0];
    assign bank_free = !bank_full[tiles_captured[0]];
    wire db = tiles_drained[0];                  // the bank being drained
    wire signed [31:0] dpt = bank_pt[db];
    wire signed [31:0] dct = bank_ct[db];
    wire signed [31:0] d_nrows = (n_pix - dpt < ROWS) ? n_pix - dpt : ROWS;
    wire signed [31:0] d_ncols = (oc - dct < COLS) ? oc - dct : COLS;
    reg signed [31:0] dr;                         // next row to read
    reg signed [31:0] row_f;                      // flat index of its first element
    reg signed [31:0] row_w;                      // its element in the output region

    // ---- pipeline: P (row read from the shadow bank) -> O (requantized) -----------------------
    reg p_valid, o_valid, p_last, o_last;
    reg [31:0] p_f, p_n, o_f, o_n, p_w, o_w;
    reg [COLS*64-1:0] p_rq;
    reg [COLS*EB-1:0] o_q;
    reg [COLS*ACC_BITS-1:0] o_acc;
    wire o_accept = o_valid && w_ready && (!acc_stream || m_acc_tready);
    wire d_adv = !o_valid || o_accept;
    assign rd_en = d_adv && bank_full[db];
    assign rd_bank = db;
    assign rd_row = dr[RW-1:0];
    assign all_drained = tiles_drained == n_tiles && !p_valid && !o_valid;
    assign w_valid = o_valid && (!acc_stream || m_acc_tready);
    assign w_index = o_w;
    assign w_count = o_n;
    assign w_data = o_q;
    assign m_acc_tvalid = o_valid && acc_stream && w_ready;
    assign m_acc_tuser = {o_n[15:0], o_f};
    assign m_acc_tlast = o_last;

    wire [COLS*EB-1:0] q_ext;
    genvar gc;
    generate
        for (gc = 0; gc < COLS; gc = gc + 1) begin : g_rq
            wire signed [OUT_BITS-1:0] q;
            hwsim_requant #(.ACC_BITS(ACC_BITS), .OUT_BITS(OUT_BITS)) requant (
                .acc(rd_vec[gc*ACC_BITS +: ACC_BITS]), .word(p_rq[gc*64 +: 64]),
                .scheme(d_scheme[2:0]), .rounding(d_round[2:0]), .output_offset(d_out_off),
                .act_min(d_act_min), .act_max(d_act_max), .out(q));
            /* verilator lint_off UNUSEDSIGNAL */  // the lane is one bit wider than needed
            wire [EB:0] qx = {{(EB - OUT_BITS + 1){OUT_SIGNED != 0 && q[OUT_BITS-1]}}, q};
            /* verilator lint_on UNUSEDSIGNAL */
            assign q_ext[gc*EB +: EB] = qx[EB-1:0];
            wire signed [ACC_BITS-1:0] a = o_acc[gc*ACC_BITS +: ACC_BITS];
            /* verilator lint_off UNUSEDSIGNAL */
            wire signed [64:0] a65 = {{(65 - ACC_BITS){a[ACC_BITS-1]}}, a};
            /* verilator lint_on UNUSEDSIGNAL */
            assign m_acc_tdata[gc*64 +: 64] = a65[63:0];
        end
    endgenerate

    integer c;
    always @(posedge clk) begin
        if (rst) begin
            p_valid <= 1'b0;
            o_valid <= 1'b0;
            bank_full[0] <= 1'b0;
            bank_full[1] <= 1'b0;
            tiles_captured <= 32'd0;
            tiles_drained <= 32'd0;
        end else if (start) begin
            tiles_captured <= 32'd0;
            tiles_drained <= 32'd0;
            c_pt <= 32'sd0;
            c_ct <= 32'sd0;
            dr <= 32'sd0;
            row_f <= 32'sd0;
            row_w <= 32'sd0;
            bank_full[0] <= 1'b0;
            bank_full[1] <= 1'b0;
        end else begin
            if (cap) begin
                bank_full[tiles_captured[0]] <= 1'b1;
                bank_pt[tiles_captured[0]] <= c_pt;
                bank_ct[tiles_captured[0]] <= c_ct;
                for (c = 0; c < COLS; c = c + 1)
                    bank_rq[{31'd0, tiles_captured[0]} * COLS + c] <=
                        rq_slots[({31'd0, tiles_captured[0]} * COLS + c) * 64 +: 64];
                tiles_captured <= tiles_captured + 32'd1;
                if (c_ct + COLS < oc) begin
                    c_ct <= c_ct + COLS;
                end else begin
                    c_ct <= 32'sd0;
                    c_pt <= c_pt + ROWS;
                end
            end
            if (d_adv) begin
                o_valid <= p_valid;
                if (p_valid) begin  // (only a row moves: less to simulate when idle)
                    o_f <= p_f;
                    o_w <= p_w;
                    o_n <= p_n;
                    o_last <= p_last;
                    o_q <= q_ext;
                    o_acc <= rd_vec;
                end
                p_valid <= rd_en;
                if (rd_en) begin
                    p_f <= (dr == 32'sd0 ? dpt * oc + dct : row_f);
                    p_n <= d_ncols;
                    p_last <= tiles_drained + 32'd1 == n_tiles && dr + 32'sd1 >= d_nrows;
                    for (c = 0; c < COLS; c = c + 1)
                        p_rq[c*64 +: 64] <= bank_rq[{31'd0, db} * COLS + c];
                    row_f <= (dr == 32'sd0 ? dpt * oc + dct : row_f) + oc;
                    p_w <= (dr == 32'sd0 ? dpt * ps + dct : row_w);
                    row_w <= (dr == 32'sd0 ? dpt * ps + dct : row_w) + ps;
                    if (dr + 32'sd1 < d_nrows) begin
                        dr <= dr + 32'sd1;
                    end else begin
                        dr <= 32'sd0;
                        bank_full[db] <= 1'b0;
                        tiles_drained <= tiles_drained + 32'd1;
                    end
                end
            end
        end
    end

`ifndef SYNTHESIS
    // simulation only: the accumulator trace file of the cocotb bench's fast transport
    integer acc_fd, j;
    reg [8*1024-1:0] acc_file;
    initial begin
        acc_fd = 0;
        if ($value$plusargs("HWSIM_TRACE_ACC=%s", acc_file)) acc_fd = $fopen(acc_file, "w");
    end
    always @(posedge clk)
        if (o_accept && acc_trace && acc_fd != 0) begin
            for (j = 0; j < COLS; j = j + 1)
                if (j < o_n)
                    $fwrite(acc_fd, "%0d %0d\n", o_f + j, $signed(m_acc_tdata[j*64 +: 64]));
            if (o_last) $fflush(acc_fd);  // the bench reads the file after each layer
        end
`endif

    integer i;
    initial begin
        p_valid = 1'b0;
        o_valid = 1'b0;
        bank_full[0] = 1'b0;
        bank_full[1] = 1'b0;
        tiles_captured = 32'd0;
        tiles_drained = 32'd0;
        for (i = 0; i < 2 * COLS; i = i + 1) bank_rq[i] = 64'd0;
    end
endmodule
`default_nettype wire
