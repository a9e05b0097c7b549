// hwsim_arith.vh: the integer primitives of hwsim/arith.py as Verilog functions.
// `include inside a module body. Every function states its exact rounding, as arith.py does;
// widths are fixed and generous (128-bit working values) so that nothing overflows.
//
//   f_round_shift(x, s, mode)   round(x / 2^s) in a ROUND_* mode (arith.round_shift)
//   f_srdhm(a, b)               gemmlowp SaturatingRoundingDoublingHighMul (int32)
//   f_rdbpot(x, e)              gemmlowp RoundingDivideByPOT (int32, ties away from zero)
//   f_mbqm_double(x, m, shift)  TFLite MultiplyByQuantizedMultiplier, double rounding
//   f_mbqm_single(x, m, shift)  TFLite MultiplyByQuantizedMultiplier, TFLITE_SINGLE_ROUNDING
//   f_mbqm_int64(x, m, shift)   TFLite MultiplyByQuantizedMultiplier(int64 x), the 16x8 kernels'
//   f_double_round(acc, word)   int(round(double(acc) * M * 2^E)), IEEE double emulated exactly
//   f_float32_round(acc, word)  rint(float32(acc) * float32 scale), IEEE float32 emulated exactly
//
// Fault injection (tests only): `define HWSIM_FAULT_ROUNDING drops the rounding of
// RoundingDivideByPOT (plain arithmetic shift: floor instead of ties away from zero) and the
// final rint of f_float32_round (toward zero instead of to nearest, ties to even).

/* verilator lint_off UNUSEDSIGNAL */  // fixed-width temporaries, partly used

// round(x / 2^s): mode 0 half away from zero, 1 half up, 2 half even, 3 floor, 4 toward zero.
// x = q*2^s + r with q = x >>> s (floor) and 0 <= r < 2^s; each mode returns q or q + 1.
function signed [127:0] f_round_shift;
    input signed [127:0] x;
    input [6:0] s;
    input [2:0] mode;
    reg signed [127:0] q;
    reg [127:0] r, half;
    begin
        if (s == 7'd0) begin
            f_round_shift = x;
        end else begin
            q = x >>> s;
            r = x & ~({128{1'b1}} << s);
            half = 128'd1 << (s - 7'd1);
            case (mode)
                3'd0: f_round_shift = (r > half || (r == half && !x[127])) ? q + 128'sd1 : q;
                3'd1: f_round_shift = (r >= half) ? q + 128'sd1 : q;
                3'd2: f_round_shift = (r > half || (r == half && q[0])) ? q + 128'sd1 : q;
                3'd3: f_round_shift = q;
                default: f_round_shift = (r != 128'd0 && x[127]) ? q + 128'sd1 : q;
            endcase
        end
    end
endfunction

// SaturatingRoundingDoublingHighMul: floor(a*b / 2^31 + 1/2) computed as the C++ does
// (nudge, then truncating division), INT32_MIN * INT32_MIN -> INT32_MAX.
function signed [31:0] f_srdhm;
    input signed [31:0] fa;
    input signed [31:0] fb;
    reg signed [63:0] ab, n, q;
    begin
        if (fa == 32'sh8000_0000 && fb == 32'sh8000_0000) begin
            f_srdhm = 32'sh7fff_ffff;
        end else begin
            ab = $signed({{32{fa[31]}}, fa}) * $signed({{32{fb[31]}}, fb});
            n = ab + (ab[63] ? (64'sd1 - 64'sd1073741824) : 64'sd1073741824);
            q = n >>> 31;
            if (n[63] && n[30:0] != 31'd0) q = q + 64'sd1;  // C++ '/' truncates toward zero
            f_srdhm = q[31:0];
        end
    end
endfunction

// RoundingDivideByPOT: round(x / 2^e), ties away from zero; e in 0..31.
function signed [31:0] f_rdbpot;
    input signed [31:0] x;
    input [4:0] e;
    reg [31:0] mask, rem, thr;
    reg signed [31:0] res;
    begin
        mask = (32'd1 << e) - 32'd1;
        rem = x & mask;
        thr = (mask >> 1) + {31'd0, x[31]};
        res = x >>> e;
`ifndef HWSIM_FAULT_ROUNDING  // the fault drops the rounding increment (floor)
        if (rem > thr) res = res + 32'sd1;
`endif
        f_rdbpot = res;
    end
endfunction

// MultiplyByQuantizedMultiplier (double rounding): shift > 0 shifts left (int32 wrap), < 0 right.
function signed [31:0] f_mbqm_double;
    input signed [31:0] x;
    input signed [31:0] m;
    input signed [7:0] shift;
    reg [4:0] ls, rs;
    reg signed [31:0] xs;
    reg signed [7:0] neg;
    begin
        neg = -shift;
        ls = (shift > 8'sd0) ? shift[4:0] : 5'd0;
        rs = (shift < 8'sd0) ? neg[4:0] : 5'd0;
        xs = x << ls;
        f_mbqm_double = f_rdbpot(f_srdhm(xs, m), rs);
    end
endfunction

// MultiplyByQuantizedMultiplier (TFLITE_SINGLE_ROUNDING):
// wrap32((x*m + 2^(30-shift)) >> (31 - shift)), shift in -31..30.
function signed [31:0] f_mbqm_single;
    input signed [31:0] x;
    input signed [31:0] m;
    input signed [7:0] shift;
    reg signed [7:0] ts;
    reg signed [127:0] p;
    begin
        ts = 8'sd31 - shift;
        p = $signed({{96{x[31]}}, x}) * $signed({{96{m[31]}}, m});
        p = (p + (128'sd1 << (ts[6:0] - 7'd1))) >>> ts[6:0];
        f_mbqm_single = p[31:0];
    end
endfunction

// MultiplyByQuantizedMultiplier(int64 x, int32 m, shift) of TFLite's 16x8 kernels (arith.py
// multiply_by_quantized_multiplier_int64): reduced = m < 0x7FFF0000 ? (m + 2^15) >> 16 : 0x7FFF,
// wrap32((x * reduced + 2^(14 - shift)) >> (15 - shift)). Domain (TFLite's asserts): |x| < 2^47,
// m in [0, 2^31 - 1], shift in -31..7, so the total shift 15 - shift is 8..46.
function signed [31:0] f_mbqm_int64;
    input signed [63:0] x;
    input signed [31:0] m;
    input signed [7:0] shift;
    reg signed [63:0] reduced;
    reg signed [7:0] ts;
    reg signed [127:0] p;
    begin
        reduced = (m < 32'sh7FFF0000) ? (({{32{m[31]}}, m} + 64'sd32768) >>> 16) : 64'sd32767;
        ts = 8'sd15 - shift;
        p = $signed({{64{x[63]}}, x}) * $signed({{64{reduced[63]}}, reduced});
        p = (p + (128'sd1 <<< (ts[6:0] - 7'd1))) >>> ts[6:0];
        f_mbqm_int64 = p[31:0];
    end
endfunction

// Scheme 5 (double_round): int(round(double(acc) * real)), real = M * 2^E exactly, word bits
// [52:0] = M, [63:53] = E (signed). IEEE double arithmetic, in integers (hwsim
// kernels/requant.py double_round_int): |acc| is rounded to 53 significant bits (ties to
// even; only int64 accumulators need it), P = |acc| * M is rounded to 53 significant bits
// (ties to even), then scaled by 2^E and rounded half away from zero; the sign is restored.
// The result saturates at +-2^100 (the caller clamps it).
function signed [127:0] f_double_round;
    input signed [63:0] dacc;
    input [63:0] dword;
    reg [127:0] mag, p, q, r, half;
    reg signed [15:0] e;
    reg [7:0] nb, s1;
    reg [7:0] rs;
    integer i;
    begin
        mag = dacc[63] ? {64'd0, (~dacc + 64'd1)} : {64'd0, dacc};
        e = {{5{dword[63]}}, dword[63:53]};
        nb = 8'd0;
        for (i = 0; i < 64; i = i + 1)
            if (mag[i]) nb = i[7:0] + 8'd1;
        if (nb > 8'd53) begin  // int64 -> double: round |acc| to 53 significant bits
            s1 = nb - 8'd53;
            q = mag >> s1;
            r = mag & ~({128{1'b1}} << s1);
            half = 128'd1 << (s1 - 8'd1);
            if (r > half || (r == half && q[0])) q = q + 128'd1;
            mag = q;
            e = e + {8'd0, s1};
        end
        p = mag * {75'd0, dword[52:0]};
        nb = 8'd0;
        for (i = 0; i < 128; i = i + 1)
            if (p[i]) nb = i[7:0] + 8'd1;
        if (nb > 8'd53) begin  // the double product: 53 significant bits, ties to even
            s1 = nb - 8'd53;
            q = p >> s1;
            r = p & ~({128{1'b1}} << s1);
            half = 128'd1 << (s1 - 8'd1);
            if (r > half || (r == half && q[0])) q = q + 128'd1;
            p = q;
            e = e + {8'd0, s1};
        end
        if (p == 128'd0) begin
            q = 128'd0;
        end else if (e >= 16'sd0) begin
            q = (e > 16'sd46) ? (128'd1 << 100) : (p << e[6:0]);
        end else if (e < -16'sd100) begin
            q = 128'd0;
        end else begin  // round half away from zero (the magnitude rounds half up)
            rs = 8'd0 - e[7:0];
            q = (p >> rs) + {127'd0, p[rs[6:0] - 7'd1]};
        end
        f_double_round = dacc[63] ? -$signed(q) : $signed(q);
    end
endfunction
// Scheme 6 (float32): ONNX Runtime's MlasRequantizeOutput before the zero point,
// rint(clip(float32(acc) * scale, +-2^40)) (hwsim.arith.requant_float32_half_even), word bits
// [31:0] = the scale's IEEE float32 bits. IEEE float32 arithmetic, in integers:
//   1. float32(acc): |acc| rounded to 24 significant bits, ties to even (cvtdq2ps; any int64);
//   2. the float32 product: A * S (24 x 24 bits, exact) rounded to 24 significant bits, ties to
//      even. Its exponent needs no range check: a product of 2^40 or more (an overflow to inf
//      included) is clipped to 2^40, and one below 2^-126 (subnormal) rints to 0 either way;
//   3. rint: the float32 value P * 2^E rounded to an integer, ties to even;
//   4. the sign (acc's xor the scale's) restored. Zero and subnormal scales are exact too;
//      inf / NaN scales are outside the domain (lowering refuses a non-finite scale).
// The result lies in [-2^40, 2^40] (the caller adds the zero point and clamps).
function signed [127:0] f_float32_round;
    input signed [63:0] facc;
    input [63:0] fword;
    reg [63:0] mag, q, r, half;
    reg [23:0] sm;          // the scale's significand (hidden bit included when normal)
    reg signed [15:0] e;    // binary exponent of the value being built
    reg [6:0] nb, s1;
    reg [7:0] rs;
    reg [127:0] v;
    integer i;
    begin
        mag = facc[63] ? (~facc + 64'd1) : facc;  // |INT64_MIN| = 2^63 fits unsigned
        e = 16'sd0;
        nb = 7'd0;
        for (i = 0; i < 64; i = i + 1)
            if (mag[i]) nb = i[6:0] + 7'd1;
        if (nb > 7'd24) begin  // int -> float32: 24 significant bits, ties to even
            s1 = nb - 7'd24;
            q = mag >> s1;
            r = mag & ~({64{1'b1}} << s1);
            half = 64'd1 << (s1 - 7'd1);
            if (r > half || (r == half && q[0])) q = q + 64'd1;  // may reach 2^24: still exact
            mag = q;
            e = {9'd0, s1};
        end
        if (fword[30:23] == 8'd0) begin  // zero or subnormal: no hidden bit, exponent -149
            sm = {1'b0, fword[22:0]};
            e = e - 16'sd149;
        end else begin
            sm = {1'b1, fword[22:0]};
            e = e + {8'd0, fword[30:23]} - 16'sd150;
        end
        mag = mag * {40'd0, sm};  // < 2^49: exact
        nb = 7'd0;
        for (i = 0; i < 50; i = i + 1)
            if (mag[i]) nb = i[6:0] + 7'd1;
        if (nb > 7'd24) begin  // the float32 product: 24 significant bits, ties to even
            s1 = nb - 7'd24;
            q = mag >> s1;
            r = mag & ~({64{1'b1}} << s1);
            half = 64'd1 << (s1 - 7'd1);
            if (r > half || (r == half && q[0])) q = q + 64'd1;
            mag = q;
            e = e + {9'd0, s1};
        end
        // now |value| = mag * 2^e, mag <= 2^24
        if (mag == 64'd0) begin
            v = 128'd0;
        end else if (e > 16'sd40) begin
            v = 128'd1 << 40;  // >= 2^41: clipped
        end else if (e >= 16'sd0) begin
            v = {64'd0, mag} << e[5:0];
            if (v > (128'd1 << 40)) v = 128'd1 << 40;
        end else if (e < -16'sd26) begin
            v = 128'd0;  // < 2^25 * 2^-27 = 1/4: rints to 0
        end else begin  // rint: round half to even
            rs = 8'd0 - e[7:0];
            q = mag >> rs;
            r = mag & ~({64{1'b1}} << rs);
            half = 64'd1 << (rs - 8'd1);
`ifndef HWSIM_FAULT_ROUNDING  // the fault drops the rint's increment (toward zero)
            if (r > half || (r == half && q[0])) q = q + 64'd1;
`endif
            v = {64'd0, q};
        end
        f_float32_round = (facc[63] ^ fword[31]) ? -$signed(v) : $signed(v);
    end
endfunction
/* verilator lint_on UNUSEDSIGNAL */
