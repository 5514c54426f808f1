# azr-exec worker: runs inside a bubblewrap sandbox, one per pool slot.
#
# The worker itself never runs model-written code. For every job it forks a fresh child that
# drops privileges, sets rlimits and runs the job; the worker enforces the wall-clock deadline and
# kills every process the job left behind before it answers. Protocol: on stdin one line per
# batch, a JSON list of requests; on stdout one line per job, in order, `HEADER \t RESULT` (see
# `supervise`). The job child never holds these two descriptors; its stdout/stderr go to a capped
# memfd and its result to a fresh pipe. Whatever a job writes to that pipe is only a *claimed
# value* (equivalent to `f` returning it), passed on verbatim; verdicts are computed in Rust.
#
# Speed: a job costs little Python and many page faults. After each fork every page of the worker
# is copy-on-write, so each page the worker or the child writes costs a fault; the code between
# two forks, and in the child, is written to touch as few objects as it can.
import ast
import builtins
import gc
import json
import math
import os
import resource
import select
import signal
import sys
import time

_type = type
_repr = repr
_len = len
_isinstance = isinstance
_literal_eval = ast.literal_eval
LITERAL_TYPES = (int, float, complex, str, bytes, bool, _type(None))
CONTAINER_TYPES = (list, tuple, set, frozenset, dict)
MAX_DEPTH = 100


def is_literal_value(v, depth=0):
    """True when v is built only from exact builtin literal types (no subclasses)."""
    t = _type(v)
    if depth > MAX_DEPTH:
        return False
    if t in LITERAL_TYPES:
        return not (t is float and (math.isnan(v) or math.isinf(v))) and not (
            t is complex and not (math.isfinite(v.real) and math.isfinite(v.imag))
        )
    if t is dict:
        return all(is_literal_value(k, depth + 1) and is_literal_value(x, depth + 1) for k, x in v.items())
    if t in CONTAINER_TYPES:
        return all(is_literal_value(x, depth + 1) for x in v)
    return False


class Rejected(Exception):
    def __init__(self, reason, detail):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def check_program(tree, banned, forbidden_names, forbidden_attrs):
    """Validity filter on the AST (not a security boundary: the sandbox is)."""
    if not any(_isinstance(n, ast.FunctionDef) and n.name == "f" for n in tree.body):
        raise Rejected("no_entry_function", "the program defines no top-level function `f`")
    # A forbidden name the program binds itself (`def f(input): ...`) is its own variable.
    bound = set()
    for node in ast.walk(tree):
        if _isinstance(node, ast.arg):
            bound.add(node.arg)
        elif _isinstance(node, ast.Name) and not _isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif _isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
    forbidden_names = forbidden_names - bound
    for node in ast.walk(tree):
        if _isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                if root in banned:
                    raise Rejected("banned_module", "imports banned module `%s`" % alias.name)
        elif _isinstance(node, ast.ImportFrom):
            root = (node.module or "").split(".")[0]
            if node.level == 0 and root in banned:
                raise Rejected("banned_module", "imports from banned module `%s`" % node.module)
            if node.level > 0:
                raise Rejected("banned_module", "relative import")
        elif _isinstance(node, ast.Name):
            if node.id in forbidden_names:
                raise Rejected("forbidden_call", "uses `%s`" % node.id)
        elif _isinstance(node, ast.Attribute):
            if node.attr in forbidden_attrs:
                raise Rejected("forbidden_call", "uses attribute `%s`" % node.attr)


def check_reads_input(tree):
    """A task whose `f` ignores its input is no task: any input solves its abduction.

    Static and approximate: every parameter of the last top-level `f` must be read somewhere in
    its body (nested functions included). `def f(x): return x * 0` passes.
    """
    f = [n for n in tree.body if _isinstance(n, ast.FunctionDef) and n.name == "f"][-1]
    a = f.args
    params = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs]
    params += [p.arg for p in (a.vararg, a.kwarg) if p is not None]
    if not params:
        raise Rejected("ignores_input", "`f` takes no parameters")
    read = set()
    for stmt in f.body:
        for node in ast.walk(stmt):
            if _isinstance(node, ast.Name) and _isinstance(node.ctx, ast.Load):
                read.add(node.id)
            elif _isinstance(node, ast.AugAssign) and _isinstance(node.target, ast.Name):
                read.add(node.target.id)
    for name in params:
        if name not in read:
            raise Rejected("ignores_input", "`f` never reads its parameter `%s`" % name)


def parse_call(input_text, literal_only):
    """Parse `f(<input>)`; return the code object. With literal_only every argument must be a literal."""
    if _len(input_text) > 1 << 20:
        raise Rejected("bad_input", "input over 1 MiB")
    try:
        tree = ast.parse("f(" + input_text + ")", mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        raise Rejected("bad_input", "input is not an argument list: %s" % _short(e))
    call = tree.body
    if not (_isinstance(call, ast.Call) and _isinstance(call.func, ast.Name) and call.func.id == "f"):
        raise Rejected("bad_input", "input is not a plain argument list")
    if literal_only:
        for node in list(call.args) + [k.value for k in call.keywords]:
            if _isinstance(node, ast.Starred):
                raise Rejected("input_not_literal", "starred argument")
            try:
                _literal_eval(node)
            except Exception as e:
                raise Rejected("input_not_literal", "argument is not a literal: %s" % _short(e))
        if any(k.arg is None for k in call.keywords):
            raise Rejected("input_not_literal", "`**` argument")
    try:
        return compile(tree, "<input>", "eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError, OverflowError) as e:
        raise Rejected("bad_input", _short(e))


def _short(e, limit=300):
    try:
        text = _no_addresses("%s: %s" % (_type(e).__name__, e))
    except Exception:
        text = _type(e).__name__
    return text if _len(text) <= limit else text[:limit] + "..."


def _no_addresses(text):
    # "<ast.BinOp object at 0x7f0053604af0>" -> "<ast.BinOp object>": addresses differ from run
    # to run, and an error's text is recorded with the step (same inputs, same record).
    out = []
    i = 0
    while True:
        j = text.find(" at 0x", i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j])
        i = j + 6
        while i < _len(text) and text[i] in "0123456789abcdefABCDEF":
            i += 1


_compiled = {}  # (program, checked, reads_input) -> code object or Rejected; checks of one task share a program
_COMPILED_MAX = 512


def compile_program(program, checked, cfg, reads_input=False):
    key = (program, checked, reads_input)
    hit = _compiled.get(key)
    if hit is None:
        try:
            hit = _compile_program(program, checked, cfg, reads_input)
        except Rejected as r:
            hit = (r.reason, r.detail)  # not the exception: re-raising one would grow its traceback
        if _len(_compiled) >= _COMPILED_MAX:
            _compiled.pop(next(iter(_compiled)))  # oldest first
        _compiled[key] = hit
    if _type(hit) is tuple:
        raise Rejected(*hit)
    return hit


def _compile_program(program, checked, cfg, reads_input):
    if _len(program) > cfg["max_program_chars"]:
        raise Rejected("syntax_error", "the program has %d characters (limit %d)" % (_len(program), cfg["max_program_chars"]))
    try:
        tree = ast.parse(program, "<program>")
        if checked:
            check_program(tree, cfg["banned"], cfg["forbidden_names"], cfg["forbidden_attrs"])
            if reads_input:
                check_reads_input(tree)
        return compile(tree, "<program>", "exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError, OverflowError) as e:
        raise Rejected("syntax_error", _short(e))


def prepare(req, cfg):
    """Static work, done in the worker before forking: parse, check and compile, executing nothing.

    Doing this in the warm worker instead of the fresh child saves most of a job's cost (a cold
    child pays a copy-on-write fault for every page the parser and the AST walk touch). It only
    parses text: no model-written code runs here. Returns (code, calls) or raises Rejected.
    """
    mode = req["mode"]  # run | validate | call_literal | multi
    validate = mode == "validate"
    code = compile_program(req["program"], validate, cfg, validate and req.get("reads_input", False))
    literal_only = mode == "call_literal" or req.get("literal_input", False)
    inputs = req["inputs"] if mode == "multi" else [req["input"]]
    calls = [parse_call(text, literal_only) for text in inputs]
    return code, calls


def run_job(req, prepared):
    """Runs in the job child. Returns the reply dict (without timing/captured output)."""
    mode = req["mode"]
    if mode == "compare":
        a = _literal_eval(req["a"])
        b = _literal_eval(req["b"])
        return {"s": "ok", "eq": bool(a == b)}
    code, calls = prepared
    ns = {"__name__": "__main__", "__builtins__": builtins}
    exec(code, ns)
    if "f" not in ns or not callable(ns["f"]):
        raise Rejected("no_entry_function", "the program defines no function `f`")
    if mode == "multi":
        # One claimed value per input; an exception fails only its own pair.
        outs = []
        for call in calls:
            try:
                value = eval(call, ns)
            except Exception as e:
                outs.append([None, False, _short(e)])
                continue
            literal = is_literal_value(value)
            text = _repr(value) if literal else None
            if text is not None and _len(text) > req["max_output"]:
                text, literal = None, False
            outs.append([text, literal, None])
        return {"s": "ok", "outs": outs}
    value = eval(calls[0], ns)
    literal = is_literal_value(value)
    if mode == "validate":
        if not literal:
            raise Rejected("not_literal", "f returned %s, not a plain literal value" % _type(value).__name__)
        again = eval(calls[0], ns)
        if not (is_literal_value(again) and again == value and _type(again) is _type(value)):
            raise Rejected("nondeterministic", "two evaluations of f gave different values")
    text = _repr(value) if literal or mode == "run" else None
    max_chars = req["max_output"]
    if text is not None and _len(text) > max_chars:
        detail = "repr of the output has %d characters (limit %d)" % (_len(text), max_chars)
        if mode == "validate":
            raise Rejected("output_too_long", detail)
        return {"s": "output_limit", "e": detail}
    if mode == "validate":
        try:
            ok = _literal_eval(text) == value
        except Exception:
            ok = False
        if not ok:
            raise Rejected("not_literal", "the output's repr does not read back as the same value")
    return {"s": "ok", "o": text, "lit": literal}


def child_main(req, prepared, result_w, memfd, uid):
    # fd 0 (/dev/null) and fd 1 (the capture memfd) are the worker's own already, and so are the
    # rlimits, signal dispositions and recursion limit that are the same for every job (set once
    # in main): every call made here touches objects, and every page touched is copied.
    os.setpgid(0, 0)
    os.dup2(memfd, 2)
    os.dup2(result_w, 3)
    os.closerange(4, 1 << 16)  # the protocol pipes among them: a job cannot answer for another
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    cpu = int(math.ceil(req["timeout"])) + 1
    mem = req["mem_mb"] << 20
    _setrlimit(_RLIMIT_CPU, (cpu, cpu))
    _setrlimit(_RLIMIT_AS, (mem, mem))
    _setrlimit(_RLIMIT_NPROC, (_MAX_PROCS, _MAX_PROCS))
    try:
        reply = run_job(req, prepared)
    except Rejected as r:
        reply = {"s": "rejected", "r": r.reason, "e": r.detail}
    except MemoryError:
        reply = {"s": "memory", "e": "MemoryError"}
    except BaseException as e:  # the program's own exceptions, SystemExit included
        reply = {"s": "error", "e": _short(e)}
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        pass
    try:
        data = encode_reply(reply)
    except BaseException:
        data = b'{"s": "error", "e": "result could not be encoded"}'
    try:
        n = os.write(3, data)
        while n < _len(data):  # a large result, written as the worker reads it
            data = data[n:]
            n = os.write(3, data)
    finally:
        os._exit(0)


_esc = json.encoder.encode_basestring_ascii  # a C function: touches little memory in the child


def encode_reply(reply):
    """JSON for the flat reply dicts of run_job, without the json module's Python-level encoder.

    Every object a fresh child touches costs a copy-on-write page fault; this path touches few.
    """
    parts = []
    for key, value in reply.items():
        if value is None or value is True or value is False:
            text = "null" if value is None else ("true" if value else "false")
        elif _type(value) is str:
            text = _esc(value)
        else:
            text = json.dumps(value)  # rare: the list of per-call results
        parts.append(_esc(key) + ":" + text)
    return ("{" + ",".join(parts) + "}").encode()


MAX_REPLY = 4 << 20
SIGNAL_NAMES = {int(s): s.name for s in signal.Signals}
_now = time.monotonic
_setrlimit = resource.setrlimit
_RLIMIT_CPU = int(resource.RLIMIT_CPU)
_RLIMIT_AS = int(resource.RLIMIT_AS)
_RLIMIT_NPROC = int(resource.RLIMIT_NPROC)
_MAX_PROCS = 8  # from the config, in main
_SIGKILL = int(signal.SIGKILL)


def supervise(req, prepared, prep_s, cfg, memfd, uid, last_pid_fd):
    """Fork the job, wait for its result or the deadline, then kill everything it left behind.

    Returns the job's reply line: `HEADER \t RESULT`. The header is the worker's own account,
    in JSON (time taken, `prep_s` of static work included; how the job ended; its captured
    output); the result is what the job process wrote, verbatim, for Rust to parse: untrusted
    bytes, only ever a claimed value. Nothing here decodes it: every object the worker builds
    between two forks costs page faults (the json module's Python layers alone were a third of
    the worker's).
    """
    start = _now()
    result_r, result_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(result_r)
            child_main(req, prepared, result_w, memfd, uid)
        finally:
            os._exit(70)
    os.close(result_w)
    pidfd = os.pidfd_open(pid)
    deadline = start + req["timeout"]
    chunks = []
    size = 0
    eof = False
    exited = False
    # Wait for the child to exit, reading its result as it comes (a large result fills the pipe
    # before the child can exit). A daemon may hold the pipe open, so EOF is not the end.
    while True:
        left = deadline - _now()
        if left <= 0:
            break
        ready = select.select([pidfd] if eof else [result_r, pidfd], [], [], left)[0]
        if result_r in ready:
            chunk = os.read(result_r, 65536)
            if not chunk:
                eof = True
            else:
                chunks.append(chunk)
                size += _len(chunk)
                if size > MAX_REPLY:
                    break
        if pidfd in ready:
            exited = True
            while not eof and size <= MAX_REPLY and select.select([result_r], [], [], 0)[0]:
                chunk = os.read(result_r, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += _len(chunk)
            break
    elapsed = _now() - start
    # Every pid of the sandbox's namespace is the worker's or a job's, allocated in order: when
    # the exited child still holds the last one, it started no process (and no thread) that
    # could live on, and the sweep below is skipped. It is the common case, and the sweep's
    # system calls and the ChildProcessError that ends it cost more than the job itself. (Pids
    # wrap, but the child's is still taken by its zombie; writing ns_last_pid needs
    # CAP_CHECKPOINT_RESTORE, which no job has.)
    alone = exited and last_pid_fd is not None and int(os.pread(last_pid_fd, 16, 0)) == pid
    if not alone:
        # Kill the job, its process group, and every process it spawned (daemons, setsid
        # escapes).
        try:
            os.killpg(pid, _SIGKILL)
        except OSError:
            pass
        if cfg["kill_all"]:  # only inside the sandbox's own PID namespace
            try:
                os.kill(-1, _SIGKILL)
            except OSError:
                pass
    wstatus = os.waitpid(pid, 0)[1]
    if not alone:
        # As PID 1 of the sandbox (or child subreaper) the worker inherits every orphan of the
        # job: reap them all, so that no zombie still counts against the next job's RLIMIT_NPROC.
        flags = 0 if cfg["kill_all"] else os.WNOHANG  # without kill_all a daemon may live on
        while True:
            try:
                if os.waitpid(-1, flags)[0] == 0:
                    break
            except ChildProcessError:
                break
    os.close(pidfd)
    os.close(result_r)
    head = '{"ms":%r' % ((prep_s + elapsed) * 1000.0)
    result = b""
    if size > MAX_REPLY:
        head += ',"end":"output_limit","e":"result message over %d bytes"' % MAX_REPLY
    elif not exited:
        head += ',"end":"timeout","e":"wall-clock timeout after %.3f s"' % req["timeout"]
    else:
        result = chunks[0] if _len(chunks) == 1 else b"".join(chunks)
        if b"\n" in result:
            result = b""  # not what encode_reply writes: no result, as if none was sent
        if os.WIFSIGNALED(wstatus):
            sig = os.WTERMSIG(wstatus)
            head += ',"sig":%d,"signame":"%s"' % (sig, SIGNAL_NAMES.get(sig, "signal %d" % sig))
        elif os.WEXITSTATUS(wstatus):
            head += ',"code":%d' % os.WEXITSTATUS(wstatus)
    # The job's stdout and stderr share the memfd's file offset with the worker: where it ends is
    # how much the job wrote (usually nothing, and then there is nothing to read or clear).
    written = os.lseek(memfd, 0, os.SEEK_CUR)
    if written:
        cap = cfg["return_stdout"]
        if cap:
            captured = os.pread(memfd, min(written, cap), 0)
            if captured:
                head += ',"out":' + _esc(captured.decode("utf-8", "replace"))
        os.ftruncate(memfd, 0)
        os.lseek(memfd, 0, os.SEEK_SET)
    return head.encode() + b"}\t" + result + b"\n"


def answer_batch(reqs, cfg, memfd, uid, last_pid_fd, proto_out):
    """One request line is a batch: all static work first, then the forks back to back.

    After a fork every page of the worker is copy-on-write, and the worker pays a fault for each
    page it writes until the next fork. Parsing and compiling a whole batch before its first
    fork, instead of before each, pays those faults once per batch. Replies stream out one line
    per job, in order, as each job ends.
    """
    prepared = []
    for req in reqs:
        start = _now()
        try:
            prep = None if req["mode"] == "compare" else prepare(req, cfg)
        except Rejected as r:
            prep = Rejected(r.reason, r.detail)  # without the traceback (and its frames)
        prepared.append((prep, _now() - start))
    sys.stdout.flush()  # nothing buffered in the worker may reach a job's capture
    for req, (prep, prep_s) in zip(reqs, prepared):
        if _type(prep) is Rejected:
            reply = {"s": "rejected", "r": prep.reason, "e": prep.detail}
            line = ('{"ms":%r}\t' % (prep_s * 1000.0)).encode() + encode_reply(reply) + b"\n"
        else:
            line = supervise(req, prep, prep_s, cfg, memfd, uid, last_pid_fd)
        proto_out.write(line)


# Jobs between two unfreezes of the worker's heap (see main).
REFREEZE_JOBS = 2000


def main():
    global _MAX_PROCS
    proto_in = os.fdopen(os.dup(0), "rb", buffering=1 << 16)
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 0)
    os.close(devnull)
    cfg = json.loads(proto_in.readline())
    cfg["banned"] = frozenset(cfg["banned"])
    cfg["forbidden_names"] = frozenset(cfg["forbidden_names"])
    cfg["forbidden_attrs"] = frozenset(cfg["forbidden_attrs"])
    uid = cfg["job_uid"] if os.getuid() == 0 else None
    _MAX_PROCS = cfg["max_procs"]
    last_pid_fd = None
    if os.getpid() == 1 and cfg["kill_all"]:
        try:
            last_pid_fd = os.open("/proc/sys/kernel/ns_last_pid", os.O_RDONLY)
        except OSError:
            pass  # then every job gets the full sweep
    else:
        # Outside a PID namespace of our own (--no-sandbox) orphans of a job would go to the
        # host's init; become their reaper instead. In the sandbox the worker is PID 1 already.
        import ctypes

        PR_SET_CHILD_SUBREAPER = 36
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    # Limits and settings that are the same for every job, set once: children inherit them. They
    # bind the worker too, which needs few descriptors, never writes a file and never dumps core.
    # (CPU seconds, address space and processes stay per job: the worker must outlive them.)
    capture = cfg["capture_bytes"]
    resource.setrlimit(resource.RLIMIT_FSIZE, (capture, capture))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.setrecursionlimit(cfg["recursion_limit"])
    # Python ignores SIGXFSZ; the default makes a stdout flood end the job as `output_limit`.
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    memfd = os.memfd_create("azr-capture")
    os.dup2(memfd, 1)  # stray prints of the worker never reach the protocol stream
    proto_out.write(json.dumps({"ready": True, "root": uid is not None, "pid": os.getpid()}).encode() + b"\n")
    # Frozen objects are never scanned by a child's cyclic GC, so it touches (and copies) fewer of
    # the worker's pages. Freezing keeps cyclic garbage forever, so the heap is collected and
    # frozen again now and then instead of before every fork (which grew the worker without
    # bound, and every page it grows by is one more to map in every fork).
    since_freeze = REFREEZE_JOBS
    for line in proto_in:
        if since_freeze >= REFREEZE_JOBS:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            since_freeze = 0
        reqs = json.loads(line)
        since_freeze += _len(reqs)
        answer_batch(reqs, cfg, memfd, uid, last_pid_fd, proto_out)


main()
