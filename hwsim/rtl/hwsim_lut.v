// hwsim_lut: the activation table unit. A unary op on b-bit data (b <= 8: LEAKY_RELU,
// LOGISTIC, TANH, HARD_SWISH, RELU*, MAXIMUM / MINIMUM with a constant, ...) is exactly a
// 2^b-entry table; the export computes it with hwsim's own kernel on every input code and
// writes it into the weight memory (entry j = the output code of input code lo + j, lo = -2^(b-1)
// signed or 0 unsigned, element j of the layer's table region). The element engine loads it
// word by word (`ld`: WGT_L entries of word `ld_word`), then looks up the L lanes of one
// activation word per cycle (combinational). Data wider than 8 bits has no table (TB = 1).
`default_nettype none
module hwsim_lut #(
    parameter IN_BITS = 8,
    parameter IN_SIGNED = 1,
    parameter OUT_BITS = 8,
    parameter OUT_SIGNED = 1,
    parameter L = 8,             // activation lanes (lane order does not matter: lane to lane)
    parameter EB = 8,            // bits per activation lane
    parameter WGT_W = 64,
    parameter WGT_L = 8,
    parameter WGT_EB = 8,
    parameter WGT_MSB_FIRST = 0
) (
    input  wire              clk,
    input  wire              ld,
    input  wire [15:0]       ld_word,
    input  wire [WGT_W-1:0]  ld_data,
    /* verilator lint_off UNUSEDSIGNAL */  // the lane bits above IN_BITS
    input  wire [L*EB-1:0]   x,
    /* verilator lint_on UNUSEDSIGNAL */
    output reg  [L*EB-1:0]   y
);
    localparam integer TB = (IN_BITS > 8) ? 1 : IN_BITS;   // table index bits
    localparam integer N = 1 << TB;
    localparam integer TE = (OUT_BITS < WGT_EB) ? OUT_BITS : WGT_EB;  // bits kept per entry
    reg [TE-1:0] tbl [0:N-1];

    integer wl;
    /* verilator lint_off UNUSEDSIGNAL */  // the entry index is j's low TB bits
    wire [31:0] j0 = {16'd0, ld_word} * WGT_L;   // first entry of the word
    /* verilator lint_on UNUSEDSIGNAL */
    always @(posedge clk) begin
        if (ld) begin
            for (wl = 0; wl < WGT_L; wl = wl + 1)
                if (j0 + wl < N)
                    tbl[j0[TB-1:0] + wl[TB-1:0]] <=
                        ld_data[(WGT_MSB_FIRST ? (WGT_L - 1 - wl) : wl) * WGT_EB +: TE];
        end
    end

    integer l;
    reg [IN_BITS-1:0] v;
    /* verilator lint_off UNUSEDSIGNAL */  // the index is v's low TB bits; the extension's top
    reg [IN_BITS-1:0] idx;
    reg [TE-1:0] e;
    reg [EB+TE-1:0] ex;
    /* verilator lint_on UNUSEDSIGNAL */
    always @* begin
        y = {L*EB{1'b0}};
        for (l = 0; l < L; l = l + 1) begin
            v = x[l*EB +: IN_BITS];
            // code - lo: signed codes have their sign bit flipped (two's complement + 2^(b-1))
            idx = (IN_SIGNED != 0) ? (v ^ ({{(IN_BITS-1){1'b0}}, 1'b1} << (IN_BITS - 1))) : v;
            e = tbl[idx[TB-1:0]];
            ex = {{EB{OUT_SIGNED != 0 && e[TE-1]}}, e};
            y[l*EB +: EB] = ex[EB-1:0];
        end
    end

    integer i;
    initial for (i = 0; i < N; i = i + 1) tbl[i] = {TE{1'b0}};
endmodule
`default_nettype wire
