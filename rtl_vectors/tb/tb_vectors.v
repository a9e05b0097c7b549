// tb_vectors.v: reads the committed vectors the way an RTL testbench does, and prints what it
// finds (tests/test_rtl_vectors.py runs it in Icarus Verilog and checks every printed value
// against manifest.yaml / vectors.h5).
//
//   cd rtl_vectors && iverilog -g2005 -o /tmp/tb_vectors tb/tb_vectors.v && vvp /tmp/tb_vectors
//
// Memory shapes are those of the tflite-int8 preset (see example/manifest.yaml, "memories").
`timescale 1ns / 1ps
module tb_vectors;
  localparam DESC_WORDS = 64;                 // 32-bit words per layer descriptor
  reg [31:0] desc     [0:64*256-1];           // mem/descriptors.hex
  reg [63:0] wgt      [0:65535];              // mem/weights.hex   (8 int8 lanes, lsb_first)
  reg [31:0] bias     [0:4095];               // mem/bias.hex      (int32)
  reg [63:0] rq       [0:4095];               // mem/requant.hex   (64-bit requant words)
  reg [63:0] act      [0:131071];             // mem/act_init.hex  (8 int8 lanes, lsb_first)
  reg [63:0] act_gold [0:131071];             // mem/act_final.hex (expected after the run)
  reg [31:0] acc_gold [0:65535];              // mem/acc.hex       (int32 accumulators)

  integer k, i, in_base, out_base;
  reg [31:0] f [0:63];

  // lane l (0 = bits [7:0]) of a 64-bit activation / weight word, as a signed int8
  function signed [7:0] lane(input [63:0] word, input integer l);
    lane = word[l*8 +: 8];
  endfunction

  initial begin
    $readmemh("example/mem/descriptors.hex", desc);
    $readmemh("example/mem/weights.hex", wgt);
    $readmemh("example/mem/bias.hex", bias);
    $readmemh("example/mem/requant.hex", rq);
    $readmemh("example/mem/act_init.hex", act);
    $readmemh("example/mem/act_final.hex", act_gold);
    $readmemh("example/mem/acc.hex", acc_gold);
    k = 0;
    while (desc[k*DESC_WORDS] != 0) begin   // op 0 = the end descriptor
      for (i = 0; i < 39; i = i + 1) f[i] = desc[k*DESC_WORDS + i];
      // fields by index (docs/dev/accel-interface.md); two's complement -> $signed
      $display("desc %0d op=%0d in=%0dx%0dx%0d out=%0dx%0dx%0d k=%0dx%0d stride=%0d,%0d pad=%0d,%0d in_base=%0d in2_base=%0d out_base=%0d w_base=%0d b_base=%0d rq_base=%0d input_offset=%0d output_offset=%0d act_min=%0d act_max=%0d wpc=%0d scheme=%0d per_channel=%0d acc_base=%0d",
               k, f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[13], f[14],
               f[16], f[17], f[18], f[19], f[20], f[21], $signed(f[22]), $signed(f[24]),
               $signed(f[25]), $signed(f[26]), f[32], f[33], f[36], f[38]);
      // first output element (lane 0 of the word at out_base), first accumulator (MAC layers),
      // first weight, bias and requant word
      $display("gold %0d out0=%0d acc0=%0d w0=%0d bias0=%0d rq0=%h", k,
               lane(act_gold[f[18]], 0), $signed(acc_gold[f[38]]), lane(wgt[f[19]], 0),
               $signed(bias[f[20]]), rq[f[21]]);
      k = k + 1;
    end
    $display("layers %0d", k);
    $display("input0 %0d input7 %0d", lane(act[0], 0), lane(act[0], 7));
    $finish;
  end
endmodule
