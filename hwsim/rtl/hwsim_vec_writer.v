// hwsim_vec_writer: writes vectors of output elements into the activation memory.
//
// A vector is `in_count` (<= VL) elements at consecutive flat NHWC indices from `in_index`
// (a drained row of the MAC array: one pixel's channels of a tile; a pool's lane group). Element
// i goes to word base + i / LANES, lane i % LANES (accel-interface.md, "Memories"), each lane
// EB bits wide. The writer takes one word-sized portion of the vector per cycle and merges it
// into the word it is assembling; a word is written (lane-masked: one write per cycle at most)
// when a portion of another word arrives, or on `flush`. So a vector that lies inside one word
// costs one cycle, one that straddles a word boundary two. `in_ready`: the writer takes a new
// vector at this clock edge (given in_valid); `busy`: a vector is still being taken apart.
`default_nettype none
module hwsim_vec_writer #(
    parameter VL = 8,            // lanes of an input vector
    parameter EB = 8,            // bits per element in the memory word
    parameter WIDTH = 64,
    parameter LANES = 8,
    parameter LOG2_LANES = 3,
    parameter LANE_MSB_FIRST = 0,
    parameter AW = 10
) (
    input  wire                 clk,
    input  wire                 rst,
    input  wire [31:0]          base,
    input  wire                 in_valid,
    output wire                 in_ready,
    input  wire [31:0]          in_index,
    input  wire [31:0]          in_count,
    input  wire [VL*EB-1:0]     in_data,
    input  wire                 flush,
    output wire                 busy,
    output reg                  we,
    output reg  [AW-1:0]        waddr,
    output reg  [WIDTH-1:0]     wdata,
    output reg  [LANES-1:0]     wmask
);
    reg              h_valid;
    reg [31:0]       h_f, h_n, h_o;
    reg [VL*EB-1:0]  h_data;
    reg              cur_valid;
    reg [31:0]       cur_w;
    reg [WIDTH-1:0]  cur_data;
    reg [LANES-1:0]  cur_mask;

    // the portion of the held vector this cycle: word p_w, lanes p_l0 .. p_l0 + p_m - 1
    wire [31:0] p_e = h_f + h_o;
    wire [31:0] p_w = p_e >> LOG2_LANES;
    wire [31:0] p_l0 = p_e & (LANES - 1);
    wire [31:0] p_room = LANES - p_l0;
    wire [31:0] p_m = (h_n - h_o < p_room) ? h_n - h_o : p_room;
    wire p_last = h_valid && h_o + p_m >= h_n;
    assign in_ready = !h_valid || p_last;
    assign busy = h_valid;
    /* verilator lint_off UNUSEDSIGNAL */  // 32-bit index arithmetic, sliced to widths
    wire [31:0] cur_addr32 = base + cur_w;
    /* verilator lint_on UNUSEDSIGNAL */

    // the portion merged into the word being assembled (or into a new one)
    integer l;
    reg [31:0] src, phys;
    reg [WIDTH-1:0] nd;
    reg [LANES-1:0] nm;
    always @* begin
        nd = (cur_valid && cur_w == p_w) ? cur_data : {WIDTH{1'b0}};
        nm = (cur_valid && cur_w == p_w) ? cur_mask : {LANES{1'b0}};
        for (l = 0; l < LANES; l = l + 1) begin
            src = h_o + l - p_l0;
            phys = LANE_MSB_FIRST ? (LANES - 1 - l) : l;
            if (l >= p_l0 && l < p_l0 + p_m) begin
                nd[phys*EB +: EB] = h_data[src*EB +: EB];
                nm[phys] = 1'b1;
            end
        end
    end

    always @(posedge clk) begin
        we <= 1'b0;
        if (rst) begin
            h_valid <= 1'b0;
            cur_valid <= 1'b0;
        end else begin
            if (h_valid) begin
                if (cur_valid && cur_w != p_w) begin
                    we <= 1'b1;
                    waddr <= cur_addr32[AW-1:0];
                    wdata <= cur_data;
                    wmask <= cur_mask;
                end
                cur_valid <= 1'b1;
                cur_w <= p_w;
                cur_data <= nd;
                cur_mask <= nm;
                h_o <= h_o + p_m;
                if (p_last) h_valid <= 1'b0;
            end else if (flush && cur_valid) begin
                we <= 1'b1;
                waddr <= cur_addr32[AW-1:0];
                wdata <= cur_data;
                wmask <= cur_mask;
                cur_valid <= 1'b0;
            end
            if (in_valid && in_ready) begin
                h_valid <= in_count != 32'd0;
                h_f <= in_index;
                h_n <= in_count;
                h_o <= 32'd0;
                h_data <= in_data;
            end
        end
    end

    initial begin
        we = 1'b0;
        h_valid = 1'b0;
        cur_valid = 1'b0;
    end
endmodule
`default_nettype wire
