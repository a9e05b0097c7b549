// hwsim_desc.vh: layer descriptor field indices (docs/dev/accel-interface.md, "Layer descriptors").
// A descriptor is 64 words of 32 bits; the RTL keeps words 0 .. HWSIM_DESC_USED-1 in a flat
// bus `desc` (word i = desc[i*32 +: 32], two's complement).
`ifndef HWSIM_DESC_VH
`define HWSIM_DESC_VH
`define HWSIM_DESC_USED        39
`define HWSIM_D_OP              0
`define HWSIM_D_IN_H            1
`define HWSIM_D_IN_W            2
`define HWSIM_D_IN_C            3
`define HWSIM_D_OUT_H           4
`define HWSIM_D_OUT_W           5
`define HWSIM_D_OUT_C           6
`define HWSIM_D_KH              7
`define HWSIM_D_KW              8
`define HWSIM_D_STRIDE_H        9
`define HWSIM_D_STRIDE_W       10
`define HWSIM_D_DILATION_H     11
`define HWSIM_D_DILATION_W     12
`define HWSIM_D_PAD_TOP        13
`define HWSIM_D_PAD_LEFT       14
`define HWSIM_D_DEPTH_MULT     15
`define HWSIM_D_IN_BASE        16
`define HWSIM_D_IN2_BASE       17
`define HWSIM_D_OUT_BASE       18
`define HWSIM_D_W_BASE         19
`define HWSIM_D_B_BASE         20
`define HWSIM_D_RQ_BASE        21
`define HWSIM_D_INPUT_OFFSET   22
`define HWSIM_D_INPUT2_OFFSET  23
`define HWSIM_D_OUTPUT_OFFSET  24
`define HWSIM_D_ACT_MIN        25
`define HWSIM_D_ACT_MAX        26
`define HWSIM_D_ADD_LSHIFT     27
`define HWSIM_D_ADD_M1         28
`define HWSIM_D_ADD_S1         29
`define HWSIM_D_ADD_M2         30
`define HWSIM_D_ADD_S2         31
`define HWSIM_D_WPC            32
`define HWSIM_D_SCHEME         33
`define HWSIM_D_ROUNDING       34
`define HWSIM_D_HAS_BIAS       35
`define HWSIM_D_PER_CHANNEL    36
`define HWSIM_D_BATCH          37
`define HWSIM_D_ACC_BASE       38
// Field i of the flat descriptor bus.
`define HWSIM_DF(bus, i) bus[(i)*32 +: 32]
// Op codes
`define HWSIM_OP_END      0
`define HWSIM_OP_CONV     1
`define HWSIM_OP_DWCONV   2
`define HWSIM_OP_FC       3
`define HWSIM_OP_MAXPOOL  4
`define HWSIM_OP_AVGPOOL  5
`define HWSIM_OP_ADD      6
`endif
