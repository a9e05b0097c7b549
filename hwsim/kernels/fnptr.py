"""Calling a compiled kernel from a parallel driver through its address.

A Numba function that calls another links the callee's LLVM module into its own and optimizes
and code-generates the whole again: a parallel driver (``parallel=True``: a gufunc, its
wrapper and the caller, each a library) compiled the heavy serial kernel it calls two or three
more times. depthwise_zmm._dw3_par took 4.0 CPU s of person_detect's cold start for a loop of
one call. Here the driver receives the serial kernel's address (an int64 argument, taken in
Python from the kernel's compiled overload) and calls it indirectly with Numba's own calling
convention, so nothing is linked: the driver compiles in a fraction of a second and a cached
driver holds no reference to another library (the address is an argument, valid in the
process that passes it).

The caller must pass arguments of exactly the types the overload was compiled for:
:func:`compiled_address` compiles the kernel for the types of the arguments it is shown, and
the driver must build the same types (tests call both drivers on the same layer).
"""
from __future__ import annotations

from llvmlite import ir
from numba import typeof, types
from numba.core import cgutils
from numba.core.callconv import excinfo_t
from numba.extending import intrinsic

_ADDRESSES: dict = {}


@intrinsic
def call_compiled(typingctx, addr, args):
    """Call the Numba-compiled function at ``addr`` (returning None) with the tuple ``args``
    as its arguments. Its status is not read: the kernels called this way raise nothing
    (no bounds checks, no exceptions in their code)."""
    if not isinstance(addr, types.Integer) or not isinstance(args, types.BaseTuple):
        return None
    argtys = tuple(args.types)

    def codegen(context, builder, sig, llargs):
        cc = context.call_conv
        fnty = cc.get_function_type(types.none, argtys)
        fnptr = builder.inttoptr(llargs[0], fnty.as_pointer())
        retty = cc.get_return_type(types.none).pointee
        ret = cgutils.alloca_once(builder, retty)
        builder.store(cgutils.get_null_value(retty), ret)
        exc = cgutils.alloca_once(builder, ir.PointerType(excinfo_t), name="excinfo")
        vals = [builder.extract_value(llargs[1], i) for i in range(len(argtys))]
        builder.call(fnptr, [ret, exc] + list(cc._get_arg_packer(argtys).as_arguments(builder, vals)))
        return context.get_dummy_value()

    return types.none(addr, args), codegen


def compiled_address(dispatcher, args) -> int:
    """The address of ``dispatcher``'s overload for the types of ``args`` (compiled, or loaded
    from Numba's cache, on first use), for :func:`call_compiled`."""
    sig = tuple(typeof(a) for a in args)
    key = (dispatcher, sig)
    addr = _ADDRESSES.get(key)
    if addr is None:
        dispatcher.compile(sig)
        cres = dispatcher.overloads[sig]
        if cres.signature.return_type != types.none:
            raise TypeError(f"{dispatcher.py_func.__name__} must return None to be called by address")
        addr = _ADDRESSES[key] = cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
    return addr
