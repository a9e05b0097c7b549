// hwsim_act_writer: writes output elements, given by flat NHWC index, into the activation
// memory. Elements that fall into the same memory word are merged into one lane-masked write;
// a word is written when the next element belongs to another word, or on `flush`.
// Element i goes to word base + i / LANES, lane i % LANES (accel-interface.md, "Memories").
`default_nettype none
module hwsim_act_writer #(
    parameter WIDTH = 64,
    parameter LANES = 8,
    parameter LOG2_LANES = 3,
    parameter ELEM_BITS = 8,
    parameter LANE_MSB_FIRST = 0,
    parameter AW = 10
) (
    input  wire                 clk,
    input  wire                 rst,
    input  wire [31:0]          base,
    input  wire                 in_valid,
    input  wire [31:0]          in_index,
    input  wire [ELEM_BITS-1:0] in_value,
    input  wire                 flush,
    output reg                  we,
    output reg  [AW-1:0]        waddr,
    output reg  [WIDTH-1:0]     wdata,
    output reg  [LANES-1:0]     wmask
);
    // wdata / wmask are in the memory's physical layout: logical lane k sits in physical lane
    // k (lsb_first) or LANES-1-k (msb_first).
    /* verilator lint_off UNUSEDSIGNAL */  // 32-bit index arithmetic, sliced to widths
    wire [31:0] in_addr32 = base + (in_index >> LOG2_LANES);
    wire [AW-1:0] in_addr = in_addr32[AW-1:0];
    /* verilator lint_on UNUSEDSIGNAL */
    wire [31:0] in_lane_log = in_index & (LANES - 1);
    wire [31:0] in_lane = LANE_MSB_FIRST ? (LANES - 1 - in_lane_log) : in_lane_log;
    reg              cur_valid;
    reg [AW-1:0]     cur_addr;
    reg [WIDTH-1:0]  cur_data;
    reg [LANES-1:0]  cur_mask;
    integer l;
    always @(posedge clk) begin
        we <= 1'b0;
        if (rst) begin
            cur_valid <= 1'b0;
            cur_mask <= {LANES{1'b0}};
        end else if (flush) begin
            if (cur_valid) begin
                we <= 1'b1;
                waddr <= cur_addr;
                wdata <= cur_data;
                wmask <= cur_mask;
            end
            cur_valid <= 1'b0;
            cur_mask <= {LANES{1'b0}};
        end else if (in_valid) begin
            if (cur_valid && cur_addr != in_addr) begin
                we <= 1'b1;
                waddr <= cur_addr;
                wdata <= cur_data;
                wmask <= cur_mask;
            end
            cur_valid <= 1'b1;
            cur_addr <= in_addr;
            for (l = 0; l < LANES; l = l + 1) begin
                if (in_lane == l) begin
                    cur_data[l*ELEM_BITS +: ELEM_BITS] <= in_value;
                    cur_mask[l] <= 1'b1;
                end else if (cur_valid && cur_addr != in_addr) begin
                    cur_mask[l] <= 1'b0;
                end
            end
        end
    end
endmodule
`default_nettype wire
