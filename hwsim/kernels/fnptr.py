"""Running a compiled kernel's work items on Numba's threads by calling it through its address.

A Numba function that calls another links the callee's LLVM module into its own and optimizes
and code-generates the whole again: a parallel driver (``parallel=True``: a gufunc, its
wrapper and the caller, each a library) compiled the heavy serial kernel it called two or three
more times (the 3x3 depthwise kernel's driver took 4.0 CPU s of person_detect's cold start for
a loop of one call). Here the one parallel driver, :func:`run_items_par`, receives the serial
kernel's address (an int64 argument, taken in Python from the kernel's compiled overload) and
calls it with Numba's own calling convention, so nothing is linked: it compiles in about a
second per argument types, and a cached driver holds no reference to another library (the
address is an argument, valid in the process that passes it).

The caller must pass arguments of exactly the types the overload was compiled for:
:func:`compiled_address` compiles the kernel for the types of the arguments it is shown, and
run_items_par passes those very arguments and a part of the same types (the tests call the
serial and parallel paths on the same layers).
"""
from __future__ import annotations

import functools

import numpy as np
from llvmlite import ir
from numba import njit, prange, typeof, types
from numba.core import cgutils
from numba.core.callconv import excinfo_t
from numba.extending import intrinsic

from . import threads

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


def direct(dispatcher, *args) -> functools.partial:
    """``functools.partial(dispatcher, *args)``, but of the compiled overload for these
    arguments' types (compiled, or loaded from Numba's cache, now; the types
    :func:`compiled_address` uses, so no other specialization): a call skips the dispatcher's
    typing of every argument. For the engine's call plan, whose steps call one kernel with
    the same arguments every run: 0.4-1.0 us less per call of a serial kernel of 18-27
    arguments, 1.3 us per run_items_par call (AMD EPYC Zen 4, person_detect's and
    mobilenet_v2's layers). A call that leaves a defaulted parameter out (mac_tiles._dw_serial's
    ``part``) stays with the dispatcher, which types the default as Numba does."""
    if len(args) != dispatcher.py_func.__code__.co_argcount:
        return functools.partial(dispatcher, *args)
    return functools.partial(dispatcher.compile(tuple(typeof(a) for a in args)), *args)


class RepeatCall:
    """``call(keys, *args)`` = ``dispatcher(*args)``; when ``keys`` (the arrays the arguments
    are made from) are the very objects of the call before, through a :func:`direct` partial
    of those arguments instead. The engine's call plan hands a kernel its own buffers on every
    run, so its calls go direct from the second run on; a caller passing new arrays each time
    (a network's input layer: the user's array) keeps the dispatcher's path and binds nothing.
    The last keys are held (alive) until other ones come."""
    __slots__ = ("dispatcher", "keys", "bound")

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher
        self.keys: tuple = ()
        self.bound = None

    def __call__(self, keys: tuple, *args) -> None:
        last = self.keys
        if len(last) == len(keys) and all(a is b for a, b in zip(last, keys)):
            if self.bound is None:
                self.bound = direct(self.dispatcher, *args)
            self.bound()
            return
        self.keys, self.bound = keys, None
        self.dispatcher(*args)


class ItemsCall:
    """``call(keys, args)``: a serial kernel's work items on Numba's threads, for one thread
    count, through ``driver`` (run_items_par) with the kernel's ``address``
    (compiled_address) and the ``part`` of every item, both made once by the caller; the
    driver's call bound once the same arrays come twice (RepeatCall)."""
    __slots__ = ("address", "part", "call")

    def __init__(self, address: int, part: tuple, driver=None):
        self.address, self.part = address, part
        self.call = RepeatCall(run_items_par if driver is None else driver)

    def __call__(self, keys: tuple, args: tuple) -> None:
        self.call(keys, self.address, args, self.part)


@njit(parallel=True, cache=True, nogil=True)
def run_items_par(serial, args, part):
    """The work items part[-2] .. part[-1] - 1 of a serial kernel ``f(*args, part)`` on Numba's
    threads, each a call ``f(*args, part[:-2] + (item, item + 1))`` through ``serial``, the
    address of f's overload for those types (compiled_address). The one parallel driver of
    the tile kernels (hwsim.kernels.mac): compiled once per argument types, a loop of calls."""
    head = part[:-2]
    i0 = part[-2]
    i1 = part[-1]
    for k in prange(i1 - i0):
        item = np.int64(i0 + k)
        call_compiled(serial, args + (head + (item, np.int64(item + 1)),))


def per_thread_count(parallel, serial):
    """A function of no arguments that calls ``parallel(nt)()`` for the current thread count nt
    > 1 and ``serial()()`` for one thread, each made once (a call plan's bound step: Numba's
    thread count is read per call, threads.count, and nothing else is done in Python)."""
    made = {}

    def run():
        nt = threads.count()
        f = made.get(nt)
        if f is None:
            f = made[nt] = parallel(nt) if nt > 1 else serial()
        f()
    return run
