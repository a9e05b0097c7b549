// hwsim_rom: a read-only memory (weights, bias, requant, descriptors), one synchronous read port.
// Initialised at time 0 by $readmemh from the file named by plusarg +<PLUSARG>=<file>
// (e.g. +HWSIM_WEIGHTS=weights.hex); +<PLUSARG>_WORDS=<n> bounds the read to words 0..n-1
// (no "file too short" warnings). Without the plusarg the memory holds zeros.
`default_nettype none
module hwsim_rom #(
    parameter WIDTH = 64,
    parameter DEPTH = 1024,
    parameter AW = 10,
    parameter PLUSARG = "HWSIM_ROM"
) (
    input  wire             clk,
    input  wire             re,
    input  wire [AW-1:0]    addr,
    output reg  [WIDTH-1:0] rdata
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    reg [8*1024-1:0] fname;
    integer i, nwords;
    initial begin
        rdata = {WIDTH{1'b0}};
        for (i = 0; i < DEPTH; i = i + 1) mem[i] = {WIDTH{1'b0}};
        if ($value$plusargs({PLUSARG, "=%s"}, fname)) begin
            if ($value$plusargs({PLUSARG, "_WORDS=%d"}, nwords)) begin
                if (nwords > DEPTH) begin
                    $display("hwsim_rom: %0s: %0d words do not fit depth %0d", PLUSARG, nwords,
                             DEPTH);
                    $finish;
                end
                if (nwords > 0) $readmemh(fname, mem, 0, nwords - 1);
            end else begin
                $readmemh(fname, mem);
            end
        end
    end
    always @(posedge clk)
        if (re) rdata <= mem[addr];
endmodule
`default_nettype wire
