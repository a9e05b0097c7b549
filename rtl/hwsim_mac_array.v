// hwsim_mac_array: ROWS x COLS processing elements, output-stationary. PE (r, c) accumulates
// output pixel r of the tile for output channel c of the tile: x comes per PE (a row's im2col
// value for CONV/FC, the pixel's own channel for DWCONV), w per column, bias per column.
`default_nettype none
module hwsim_mac_array #(
    parameter ROWS = 8,
    parameter COLS = 8,
    parameter XW = 9,
    parameter WB = 8,
    parameter ACC_BITS = 32,
    parameter SATURATE = 0
) (
    input  wire                          clk,
    input  wire                          load,
    input  wire                          mac,
    input  wire                          add_bias,
    input  wire [COLS*32-1:0]            init,
    input  wire [COLS*32-1:0]            bias,
    input  wire [ROWS*COLS*XW-1:0]       x,
    input  wire [COLS*WB-1:0]            w,
    output wire [ROWS*COLS*ACC_BITS-1:0] acc
);
    genvar r, c;
    generate
        for (r = 0; r < ROWS; r = r + 1) begin : g_row
            for (c = 0; c < COLS; c = c + 1) begin : g_col
                hwsim_pe #(.XW(XW), .WB(WB), .ACC_BITS(ACC_BITS), .SATURATE(SATURATE)) pe (
                    .clk(clk), .load(load), .mac(mac), .add_bias(add_bias),
                    .init(init[c*32 +: 32]), .bias(bias[c*32 +: 32]),
                    .x(x[(r*COLS + c)*XW +: XW]), .w(w[c*WB +: WB]),
                    .acc(acc[(r*COLS + c)*ACC_BITS +: ACC_BITS]));
            end
        end
    endgenerate
endmodule
`default_nettype wire
