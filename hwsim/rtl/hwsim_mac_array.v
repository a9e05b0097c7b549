// hwsim_mac_array: ROWS x COLS processing elements, output-stationary. PE (r, c) accumulates
// output pixel r of the tile for output channel c of the tile, with the accumulator model of
// the config (ACC_BITS, wrap or saturate on every addition):
//   load      acc <= ovf(init[c])            (init = the bias when BIAS_FIRST, else 0)
//   mac       acc <= ovf(acc + x[r][c] * w[c])  (one product per cycle, (ky, kx, ic) order)
//   add_bias  acc <= ovf(acc + bias[c])      (bias added last when BIAS_FIRST = 0)
// x comes per row (x_row: the row's im2col value, CONV/FC) or per PE (x_pe, when per_pe: the
// pixel's own channel, DWCONV); w and the bias per column. The accumulators form one register
// file, updated by a single loop over the PEs (cheap to simulate). `capture` copies every
// accumulator to a shadow register; rd_sel / rd_en read one shadow register (registered), so
// the drain of a tile overlaps the next tile's work.
// Fault injection (tests only): `define HWSIM_FAULT_NARROW_ACC makes every accumulator
// 16 bits (wrapping), sign-extended to ACC_BITS.
`default_nettype none
module hwsim_mac_array #(
    parameter ROWS = 8,
    parameter COLS = 8,
    parameter XW = 9,
    parameter WB = 8,
    parameter ACC_BITS = 32,
    parameter SATURATE = 0,
    parameter SEL_W = 7
) (
    input  wire                       clk,
    input  wire                       load,
    input  wire                       mac,
    input  wire                       add_bias,
    input  wire [COLS*32-1:0]         init,
    input  wire [COLS*32-1:0]         bias,
    input  wire                       per_pe,
    input  wire [ROWS*XW-1:0]         x_row,
    input  wire [ROWS*COLS*XW-1:0]    x_pe,
    input  wire [COLS*WB-1:0]         w,
    input  wire                       capture,
    input  wire                       rd_en,
    input  wire [SEL_W-1:0]           rd_sel,
    output reg  signed [ACC_BITS-1:0] rd_acc
);
`ifdef HWSIM_FAULT_NARROW_ACC
    localparam EB = 16;
`else
    localparam EB = ACC_BITS;
`endif
    // working width: the accumulator, a 32-bit bias or a product, plus one carry bit
    localparam SW0 = (ACC_BITS > 32) ? ACC_BITS : 32;
    localparam SW = ((SW0 > XW + WB) ? SW0 : XW + WB) + 1;
    localparam signed [SW-1:0] EMAX = (1 <<< (EB - 1)) - 1;
    localparam signed [SW-1:0] EMIN = -(1 <<< (EB - 1));

    // one PE step: ovf(base + addend)
    /* verilator lint_off UNUSEDSIGNAL */  // working-width temporaries
    function signed [ACC_BITS-1:0] f_pe;
        input signed [SW-1:0] base;
        input signed [SW-1:0] addend;
        reg signed [SW-1:0] sum, res;
        begin
            sum = base + addend;
            if (SATURATE != 0)
                res = (sum > EMAX) ? EMAX : ((sum < EMIN) ? EMIN : sum);
            else
                res = {{(SW - EB){sum[EB-1]}}, sum[EB-1:0]};
            f_pe = res[ACC_BITS-1:0];
        end
    endfunction
    /* verilator lint_on UNUSEDSIGNAL */

    function signed [SW-1:0] f_ext32;
        input [31:0] v;
        f_ext32 = {{(SW - 32){v[31]}}, v};
    endfunction

    reg signed [ACC_BITS-1:0] acc [0:ROWS*COLS-1];
    reg signed [ACC_BITS-1:0] shadow [0:ROWS*COLS-1];
    // Wrapping at the full width is plain ACC_BITS-bit arithmetic (the fast path); saturation
    // (or the narrow-accumulator fault) goes through f_pe at the working width.
    localparam PLAIN_WRAP = (SATURATE == 0) && (EB == ACC_BITS);
    integer r, c;
    always @(posedge clk) begin
        if (PLAIN_WRAP) begin
            for (r = 0; r < ROWS; r = r + 1)
                for (c = 0; c < COLS; c = c + 1) begin
                    if (load)
                        acc[r*COLS + c] <= $signed(init[c*32 +: 32]);
                    else if (mac && per_pe)
                        acc[r*COLS + c] <= acc[r*COLS + c]
                            + $signed(x_pe[(r*COLS + c)*XW +: XW]) * $signed(w[c*WB +: WB]);
                    else if (mac)
                        acc[r*COLS + c] <= acc[r*COLS + c]
                            + $signed(x_row[r*XW +: XW]) * $signed(w[c*WB +: WB]);
                    else if (add_bias)
                        acc[r*COLS + c] <= acc[r*COLS + c] + $signed(bias[c*32 +: 32]);
                end
        end else begin
            for (r = 0; r < ROWS; r = r + 1)
                for (c = 0; c < COLS; c = c + 1) begin
                    if (load)
                        acc[r*COLS + c] <= f_pe({SW{1'b0}}, f_ext32(init[c*32 +: 32]));
                    else if (mac && per_pe)
                        acc[r*COLS + c] <= f_pe({{(SW - ACC_BITS){acc[r*COLS + c][ACC_BITS-1]}},
                                                 acc[r*COLS + c]},
                                                $signed(x_pe[(r*COLS + c)*XW +: XW])
                                                * $signed(w[c*WB +: WB]));
                    else if (mac)
                        acc[r*COLS + c] <= f_pe({{(SW - ACC_BITS){acc[r*COLS + c][ACC_BITS-1]}},
                                                 acc[r*COLS + c]},
                                                $signed(x_row[r*XW +: XW])
                                                * $signed(w[c*WB +: WB]));
                    else if (add_bias)
                        acc[r*COLS + c] <= f_pe({{(SW - ACC_BITS){acc[r*COLS + c][ACC_BITS-1]}},
                                                 acc[r*COLS + c]},
                                                f_ext32(bias[c*32 +: 32]));
                end
        end
        if (capture)
            for (r = 0; r < ROWS*COLS; r = r + 1) shadow[r] <= acc[r];
        if (rd_en) rd_acc <= shadow[rd_sel];
    end

    integer i;
    initial begin
        rd_acc = {ACC_BITS{1'b0}};
        for (i = 0; i < ROWS*COLS; i = i + 1) begin
            acc[i] = {ACC_BITS{1'b0}};
            shadow[i] = {ACC_BITS{1'b0}};
        end
    end
endmodule
`default_nettype wire
