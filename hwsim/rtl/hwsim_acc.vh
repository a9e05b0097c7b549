// hwsim_acc.vh: one step of a PE's accumulator, the model of hwsim/kernels/accumulate.py
// (docs/dataflow.md, "The accumulator model"). `include inside a module body that defines the
// localparams ACC_BITS, ACC_SAT (1: saturate, 0: wrap), BIAS_FIRST, WS (1: weight-stationary
// order), PW (product width), BW (bias width) and SW (working width, >= max(ACC_BITS, PW, BW) + 2).
//
//   ovf(v)   = v wrapped to ACC_BITS bits (two's complement) or saturated to their range
//   output stationary:  acc = ovf(bias) (BIAS_FIRST) or 0;  acc = ovf(acc + p_k) for every k;
//                       acc = ovf(acc + bias) after the last k when !BIAS_FIRST
//   weight stationary:  the same, but the products of a chunk of `rows` consecutive k are first
//                       summed into s (s = ovf(s + p_k), s = 0 at the chunk's first k) and each
//                       chunk sum is added at the chunk's last k: acc = ovf(acc + s)
//
// Fault injection (tests only): `define HWSIM_FAULT_NARROW_ACC makes every accumulator 16 bits,
// wrapping (sign-extended to ACC_BITS).
`ifdef HWSIM_FAULT_NARROW_ACC
    localparam ACC_EB = 16;
    localparam ACC_SAT_E = ACC_SAT * 0;  // wraps whatever the config says
`else
    localparam ACC_EB = ACC_BITS;
    localparam ACC_SAT_E = ACC_SAT;
`endif
    localparam [SW-1:0] ACC_MAX = {{(SW - ACC_EB + 1){1'b0}}, {(ACC_EB - 1){1'b1}}};
    localparam [SW-1:0] ACC_MIN = {{(SW - ACC_EB + 1){1'b1}}, {(ACC_EB - 1){1'b0}}};

    /* verilator lint_off UNUSEDSIGNAL */  // working-width temporaries
    // ovf(v): v wrapped or saturated to the accumulator
    function signed [ACC_BITS-1:0] f_ovf;
        input signed [SW-1:0] v;
        reg signed [SW-1:0] r;
        begin
            if (ACC_SAT_E != 0)
                r = (v > $signed(ACC_MAX)) ? $signed(ACC_MAX)
                  : ((v < $signed(ACC_MIN)) ? $signed(ACC_MIN) : v);
            else
                r = {{(SW - ACC_EB){v[ACC_EB-1]}}, v[ACC_EB-1:0]};
            f_ovf = r[ACC_BITS-1:0];
        end
    endfunction

    function signed [SW-1:0] f_xacc;  // an accumulator value at the working width
        input signed [ACC_BITS-1:0] a;
        f_xacc = {{(SW - ACC_BITS){a[ACC_BITS-1]}}, a};
    endfunction

    // {s', acc'} after one product p with the step's flags: kfirst / klast (first / last k of
    // the reduction), cfirst / clast (first / last k of a weight-stationary chunk).
    function [2*ACC_BITS-1:0] f_pe_step;
        input signed [ACC_BITS-1:0] st_acc;
        input signed [ACC_BITS-1:0] st_s;
        input signed [PW-1:0] st_p;
        input signed [BW-1:0] st_bias;
        input kfirst;
        input klast;
        input cfirst;
        input clast;
        reg signed [SW-1:0] xp, xb;
        reg signed [ACC_BITS-1:0] base, s1, a1;
        begin
            xp = {{(SW - PW){st_p[PW-1]}}, st_p};
            xb = {{(SW - BW){st_bias[BW-1]}}, st_bias};
            base = kfirst ? ((BIAS_FIRST != 0) ? f_ovf(xb) : {ACC_BITS{1'b0}}) : st_acc;
            if (WS != 0) begin
                s1 = f_ovf((cfirst ? {SW{1'b0}} : f_xacc(st_s)) + xp);
                a1 = clast ? f_ovf(f_xacc(base) + f_xacc(s1)) : base;
            end else begin
                s1 = st_s;
                a1 = f_ovf(f_xacc(base) + xp);
            end
            if (klast && BIAS_FIRST == 0) a1 = f_ovf(f_xacc(a1) + xb);
            f_pe_step = {s1, a1};
        end
    endfunction
    /* verilator lint_on UNUSEDSIGNAL */
