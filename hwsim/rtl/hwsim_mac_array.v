// hwsim_mac_array: ROWS x COLS processing elements, output-stationary and systolic. PE (r, c)
// accumulates output pixel r of the tile for output channel c of the tile.
//
// Operands move one PE per cycle: row r's input enters at column 0 (row_in: the step flags and
// one XW-bit lane per column — the same value in every lane for CONV / FC, each column's own
// channel for DWCONV) and moves right; column c's weight enters at row 0 (col_in) and moves
// down. The engine feeds row r and column c with the reduction step k delayed by r and by c
// cycles, so PE (r, c) applies product k at cycle k + r + c: a tile of reduction length K takes
// K + ROWS + COLS - 2 cycles from the first product of PE (0, 0) to the last of
// PE (ROWS-1, COLS-1), the dataflow model's formula (docs/dataflow.md).
//
// Each PE step is f_pe_step of hwsim_acc.vh (the config's accumulator width,
// wrap or saturate after every addition, output- or weight-stationary order); the bias of
// column c comes from `bias` slot `par` (the step's tile parity), so a tile's last PEs still
// see their bias while the next tile's bias is loaded. Every register moves only when `adv` is
// high (the engine freezes the array while an operand is late). `last_step` says
// PE (ROWS-1, COLS-1) applied the last step of a tile at this clock edge: the engine then copies
// every accumulator into shadow bank `cap_bank` (`cap`), from which the drain reads one row per
// cycle (rd_*: registered).
`default_nettype none
module hwsim_mac_array #(
    parameter ROWS = 8,
    parameter COLS = 8,
    parameter XW = 9,            // x + input_offset
    parameter WBX = 8,           // weight (sign-extended when unsigned weights)
    parameter BW = 32,           // bias
    parameter ACC_BITS = 32,
    parameter SATURATE = 0,
    parameter BIAS_FIRST = 1,
    parameter WEIGHT_STATIONARY = 0,
    parameter RW = 3             // row index width
) (
    input  wire                         clk,
    input  wire                         rst,
    input  wire                         adv,
    input  wire [ROWS*(6+COLS*XW)-1:0]  row_in,   // per row: {lanes, flags[5:0]}
    input  wire [COLS*WBX-1:0]          col_in,
    input  wire [2*COLS*BW-1:0]         bias,     // [par][col]
    output reg                          last_step,
    input  wire                         cap,
    input  wire                         cap_bank,
    input  wire                         rd_en,
    input  wire                         rd_bank,
    input  wire [RW-1:0]                rd_row,
    output reg  [COLS*ACC_BITS-1:0]     rd_vec
);
    localparam RIN = 6 + COLS * XW;   // a row's operand: flags [5:0] + the lanes
    localparam ACC_SAT = SATURATE;
    localparam WS = WEIGHT_STATIONARY;
    localparam PW = XW + WBX;
    localparam SW0 = (ACC_BITS > PW) ? ACC_BITS : PW;
    localparam SW = ((SW0 > BW) ? SW0 : BW) + 2;
    localparam N = ROWS * COLS;
`include "hwsim_acc.vh"
    // Wrapping at the full width in output-stationary order is plain ACC_BITS-bit arithmetic:
    // the same f_pe_step, written out in the update loop (cheaper to simulate: no function call,
    // a quarter of Icarus' time on a CONV layer).
`ifdef HWSIM_FAULT_NARROW_ACC
    localparam PLAIN = 0;
`else
    localparam PLAIN = (SATURATE == 0) && (WS == 0);
`endif

    // The registers of PE (r, c) at index r * COLS + c. The step flags: 0 valid, 1 kfirst,
    // 2 klast, 3 cfirst, 4 clast, 5 parity (bias slot); lane c of xs is the PE's operand.
    // (One register file updated by one loop: what simulators run fastest.)
    reg [RIN-1:0]              xs [0:N-1];
    reg signed [WBX-1:0]       wsh [0:N-1];
    reg signed [ACC_BITS-1:0]  acc [0:N-1];
    reg signed [ACC_BITS-1:0]  sacc [0:N-1];     // weight-stationary chunk sums
    reg signed [ACC_BITS-1:0]  shadow [0:2*N-1];

    // PE (r, c)'s next {s, acc}: the accumulator model's step (PLAIN is written out below)
    /* verilator lint_off UNUSEDSIGNAL */
    function [2*ACC_BITS-1:0] f_pe;
        input integer r;
        input integer c;
        reg [RIN-1:0] xc;
        begin
            xc = xs[r*COLS + c];
            f_pe = f_pe_step(acc[r*COLS + c], sacc[r*COLS + c],
                             $signed(xc[6 + c*XW +: XW]) * wsh[r*COLS + c],
                             bias[({31'd0, xc[5]} * COLS + c) * BW +: BW], xc[1], xc[2], xc[3],
                             xc[4]);
        end
    endfunction
    /* verilator lint_on UNUSEDSIGNAL */

    // The array holds no step once ROWS + COLS cycles have passed without one entering: its
    // registers then need no update (saves simulation time between MAC layers).
    localparam QW = $clog2(ROWS + COLS + 2) + 1;
    reg [QW-1:0] quiet;
    wire [ROWS-1:0] in_valid;
    genvar gr;
    generate
        for (gr = 0; gr < ROWS; gr = gr + 1) begin : g_in
            assign in_valid[gr] = row_in[gr*RIN];
        end
    endgenerate
    wire any_in = |in_valid;

    // PLAIN: the bias of each slot and column wrapped to the accumulator (its low bits)
    localparam signed [ACC_BITS-1:0] ZERO = {ACC_BITS{1'b0}};
    reg signed [ACC_BITS-1:0] bias_a [0:2*COLS-1];
    /* verilator lint_off UNUSEDSIGNAL */
    reg [ACC_BITS+BW-1:0] bxt;  // the bias sign-extended: its low ACC_BITS bits
    /* verilator lint_on UNUSEDSIGNAL */
    integer bi;
    always @* begin
        for (bi = 0; bi < 2 * COLS; bi = bi + 1) begin
            bxt = {{ACC_BITS{bias[bi*BW + BW - 1]}}, bias[bi*BW +: BW]};
            bias_a[bi] = bxt[ACC_BITS-1:0];
        end
    end

    integer r, c, i;
    always @(posedge clk) begin
        last_step <= 1'b0;
        if (rst) begin
            for (i = 0; i < N; i = i + 1) xs[i] <= {RIN{1'b0}};
            quiet <= {QW{1'b0}};
        end else if (adv && (any_in || quiet <= ROWS + COLS)) begin
            quiet <= any_in ? {QW{1'b0}} : quiet + 1'b1;
            for (r = 0; r < ROWS; r = r + 1)
                for (c = 0; c < COLS; c = c + 1) begin
                    xs[r*COLS + c] <= (c == 0) ? row_in[r*RIN +: RIN] : xs[r*COLS + c - 1];
                    wsh[r*COLS + c] <= (r == 0) ? $signed(col_in[c*WBX +: WBX])
                                                : wsh[(r - 1)*COLS + c];
                    if (xs[r*COLS + c][0]) begin
                        if (PLAIN != 0)
                            acc[r*COLS + c] <=
                                (xs[r*COLS + c][1]
                                    ? ((BIAS_FIRST != 0)
                                       ? bias_a[{31'd0, xs[r*COLS + c][5]} * COLS + c] : ZERO)
                                    : acc[r*COLS + c])
                                + $signed(xs[r*COLS + c][6 + c*XW +: XW]) * wsh[r*COLS + c]
                                + ((xs[r*COLS + c][2] && BIAS_FIRST == 0)
                                    ? bias_a[{31'd0, xs[r*COLS + c][5]} * COLS + c] : ZERO);
                        else
                            {sacc[r*COLS + c], acc[r*COLS + c]} <= f_pe(r, c);
                    end
                end
            last_step <= xs[N-1][0] && xs[N-1][2];
        end
        if (cap)
            for (i = 0; i < N; i = i + 1) shadow[{31'd0, cap_bank} * N + i] <= acc[i];
        if (rd_en)
            for (c = 0; c < COLS; c = c + 1)
                rd_vec[c*ACC_BITS +: ACC_BITS] <= shadow[({31'd0, rd_bank} * ROWS
                                                          + {{(32-RW){1'b0}}, rd_row}) * COLS + c];
    end

    initial begin
        last_step = 1'b0;
        quiet = {QW{1'b0}};
        rd_vec = {COLS*ACC_BITS{1'b0}};
        for (i = 0; i < N; i = i + 1) begin
            xs[i] = {RIN{1'b0}};
            wsh[i] = {WBX{1'b0}};
            acc[i] = {ACC_BITS{1'b0}};
            sacc[i] = {ACC_BITS{1'b0}};
            shadow[i] = {ACC_BITS{1'b0}};
            shadow[N + i] = {ACC_BITS{1'b0}};
        end
    end
endmodule
`default_nettype wire
