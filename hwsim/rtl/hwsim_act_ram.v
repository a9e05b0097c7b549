// hwsim_act_ram: the activation memory. One synchronous read port, one write port with a
// write enable per physical lane (wmask[p] writes bits [p*ELEM_BITS +: ELEM_BITS]).
// Holds zeros at time 0.
`default_nettype none
module hwsim_act_ram #(
    parameter WIDTH = 64,
    parameter LANES = 8,
    parameter ELEM_BITS = 8,
    parameter DEPTH = 1024,
    parameter AW = 10
) (
    input  wire             clk,
    input  wire             re,
    input  wire [AW-1:0]    raddr,
    output reg  [WIDTH-1:0] rdata,
    input  wire             we,
    input  wire [AW-1:0]    waddr,
    input  wire [WIDTH-1:0] wdata,
    input  wire [LANES-1:0] wmask
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    integer i;
    initial begin
        rdata = {WIDTH{1'b0}};
        for (i = 0; i < DEPTH; i = i + 1) mem[i] = {WIDTH{1'b0}};
    end
    integer l;
    always @(posedge clk) begin
        if (re) rdata <= mem[raddr];
        if (we)
            for (l = 0; l < LANES; l = l + 1)
                if (wmask[l])
                    mem[waddr][l*ELEM_BITS +: ELEM_BITS] <= wdata[l*ELEM_BITS +: ELEM_BITS];
    end
endmodule
`default_nettype wire
