//! The job kinds on the real sandbox: validation reasons, gold outputs, and the three checks.

use std::sync::OnceLock;
use std::time::Duration;

use azr_exec::{ExecConfig, Executor, Job, JobResult, Rejection, Status};

fn exec() -> &'static Executor {
    static EXEC: OnceLock<Executor> = OnceLock::new();
    EXEC.get_or_init(|| {
        Executor::new(ExecConfig {
            workers: 2,
            timeout: Duration::from_millis(1500),
            ..ExecConfig::default()
        })
        .expect("the sandboxed executor starts (is bubblewrap installed?)")
    })
}

fn validate(program: &str, input: &str) -> JobResult {
    exec().run(&Job::Validate {
        program: program.into(),
        input: input.into(),
        literal_input: false,
        reads_input: false,
    })
}

fn rejection(program: &str, input: &str) -> Option<Rejection> {
    let r = validate(program, input);
    assert!(r.gold_output().is_none(), "expected a rejection: {r:?}");
    eprintln!("{program:?} -> {r:?}");
    r.rejection
}

#[test]
fn valid_proposals_give_their_gold_output() {
    let r = validate(
        "def f(a, b=2):\n    return {'sum': a + b, 'items': (a, [b])}",
        "1, b=3",
    );
    assert_eq!(
        r.gold_output(),
        Some("{'sum': 4, 'items': (1, [3])}"),
        "{r:?}"
    );
    let r = validate("def f(s):\n    return s[::-1]", "'Hello World'");
    assert_eq!(r.gold_output(), Some("'dlroW olleH'"));
    // Helpers, classes and allowed imports at the top are fine.
    let r = validate(
        "import math\nfrom collections import Counter\nclass P:\n    def __init__(self, v):\n        self.v = v\n\
         def helper(x):\n    return P(x).v\ndef f(xs):\n    return sorted(Counter(xs).items()), math.isqrt(helper(17))",
        "'abca'",
    );
    assert_eq!(
        r.gold_output(),
        Some("([('a', 2), ('b', 1), ('c', 1)], 4)"),
        "{r:?}"
    );
    // Inputs may be expressions (CRUXEval has a dozen), evaluated in the program's namespace.
    let r = validate("K = 3\ndef f(xs):\n    return xs", "[K] * 2");
    assert_eq!(r.gold_output(), Some("[3, 3]"));
}

#[test]
fn static_rejections() {
    assert_eq!(
        rejection("def f(x:\n    return x", "1"),
        Some(Rejection::SyntaxError)
    );
    assert_eq!(
        rejection("def g(x):\n    return x", "1"),
        Some(Rejection::NoEntryFunction)
    );
    assert_eq!(
        rejection("f = lambda x: x", "1"),
        Some(Rejection::NoEntryFunction)
    );
    for banned in [
        "import os\ndef f(x):\n    return x",
        "import os.path\ndef f(x):\n    return x",
        "from os import path\ndef f(x):\n    return x",
        "import random as r\ndef f(x):\n    return x",
        "def f(x):\n    import subprocess\n    return x",
        "from datetime import datetime\ndef f(x):\n    return x",
        "import importlib\ndef f(x):\n    return x",
    ] {
        assert_eq!(
            rejection(banned, "1"),
            Some(Rejection::BannedModule),
            "{banned}"
        );
    }
    for forbidden in [
        "def f(x):\n    return __import__('os').getcwd()",
        "def f(x):\n    return open('/etc/hostname').read()",
        "def f(x):\n    return input()",
        "def f(x):\n    return eval('1 + 1')",
        "def f(x):\n    exec('y = 1')\n    return x",
        "def f(x):\n    return ().__class__.__bases__[0].__subclasses__()",
        "def f(x):\n    return f.__globals__",
    ] {
        assert_eq!(
            rejection(forbidden, "1"),
            Some(Rejection::ForbiddenCall),
            "{forbidden}"
        );
    }
    // A parameter that shadows a forbidden name is the program's own variable.
    let r = validate("def f(input):\n    return input.upper()", "'x'");
    assert_eq!(r.gold_output(), Some("'X'"), "{r:?}");
}

#[test]
fn input_rejections() {
    assert_eq!(
        rejection("def f(x):\n    return x", "1) + (2"),
        Some(Rejection::BadInput)
    );
    assert_eq!(
        rejection("def f(x):\n    return x", "[1,"),
        Some(Rejection::BadInput)
    );
    let r = exec().run(&Job::Validate {
        program: "def f(x):\n    return x".into(),
        input: "list(range(3))".into(),
        literal_input: true,
        reads_input: false,
    });
    assert_eq!(r.rejection, Some(Rejection::InputNotLiteral), "{r:?}");
    // The message names the node without its memory address: the same proposal must give the
    // same record in every run.
    let error = r.error.clone().unwrap_or_default();
    assert!(
        error.contains("<ast.Call object>") && !error.contains("0x"),
        "{error}"
    );
    let r = exec().run(&Job::Validate {
        program: "def f(x, y):\n    return x".into(),
        input: "[1, (2, 3)], y={'a': b'x'}".into(),
        literal_input: true,
        reads_input: false,
    });
    assert_eq!(r.gold_output(), Some("[1, (2, 3)]"), "{r:?}");
}

/// With `reads_input`, a program whose `f` ignores its input is rejected, and one that reads
/// every parameter (directly, in a nested function, or by `+=`) is not.
#[test]
fn programs_that_ignore_their_input() {
    let check = |program: &str, input: &str| {
        exec().run(&Job::Validate {
            program: program.into(),
            input: input.into(),
            literal_input: true,
            reads_input: true,
        })
    };
    for (program, input, unread) in [
        ("def f(list):\n    return [1, 2]", "[3]", "`list`"),
        ("def f(a, b):\n    return a", "1, 2", "`b`"),
        ("def f(*args):\n    return 0", "1", "`args`"),
        ("def f():\n    return 0", "", "no parameters"),
        // A parameter only written, never read.
        ("def f(x):\n    x = 3\n    return 1", "1", "`x`"),
    ] {
        let r = check(program, input);
        assert_eq!(
            r.rejection,
            Some(Rejection::IgnoresInput),
            "{program:?}: {r:?}"
        );
        let error = r.error.unwrap_or_default();
        assert!(error.contains(unread), "{program:?}: {error}");
    }
    for (program, input, output) in [
        ("def f(x):\n    return x * 2", "3", "6"),
        (
            "def f(x):\n    def g():\n        return x\n    return g()",
            "1",
            "1",
        ),
        ("def f(n):\n    n += 1\n    return 0", "1", "0"),
        ("def f(a, *, k=1):\n    return a + k", "1, k=2", "3"),
    ] {
        let r = check(program, input);
        assert_eq!(r.gold_output(), Some(output), "{program:?}: {r:?}");
    }
    // Off, the same program is valid.
    assert_eq!(
        validate("def f(list):\n    return [1, 2]", "[3]").gold_output(),
        Some("[1, 2]")
    );
}

#[test]
fn runtime_rejections() {
    assert_eq!(
        rejection("def f(x):\n    return 1 / 0", "1"),
        Some(Rejection::Error)
    );
    assert_eq!(
        rejection("def f(x):\n    while True:\n        pass", "1"),
        Some(Rejection::Timeout)
    );
    assert_eq!(
        rejection("def f(x):\n    return bytearray(1 << 40)", "1"),
        Some(Rejection::Memory)
    );
    assert_eq!(
        rejection("def f(x):\n    return list(range(1000))", "1"),
        Some(Rejection::OutputTooLong)
    );
    assert_eq!(
        rejection("C = [0]\ndef f(x):\n    C[0] += 1\n    return C[0]", "1"),
        Some(Rejection::Nondeterministic)
    );
    // The input is rebuilt for the second call, so mutating it is deterministic.
    let r = validate("def f(xs):\n    xs.append(1)\n    return len(xs)", "[]");
    assert_eq!(r.gold_output(), Some("1"), "{r:?}");
    for not_literal in [
        "from collections import deque\ndef f(x):\n    return deque([x])",
        "class A:\n    pass\ndef f(x):\n    return A()",
        "def f(x):\n    return float('inf')",
        "def f(x):\n    return [float('nan')]",
        "def f(x):\n    return f",
        "def f(x):\n    return range(3)",
        "class S(str):\n    pass\ndef f(x):\n    return S('a')",
    ] {
        assert_eq!(
            rejection(not_literal, "1"),
            Some(Rejection::NotLiteral),
            "{not_literal}"
        );
    }
}

#[test]
fn set_order_is_the_same_in_every_worker_and_pool() {
    // PYTHONHASHSEED is fixed, so a set's repr is stable across processes.
    let program = "def f(x):\n    return list({'alpha', 'beta', 'gamma', 'delta', 'epsilon', x})";
    let jobs: Vec<Job> = (0..8)
        .map(|_| Job::Validate {
            program: program.into(),
            input: "'zeta'".into(),
            literal_input: false,
            reads_input: false,
        })
        .collect();
    let first: Vec<_> = exec()
        .run_batch(&jobs)
        .into_iter()
        .map(|r| r.output)
        .collect();
    let other = Executor::new(ExecConfig {
        workers: 1,
        ..ExecConfig::default()
    })
    .unwrap();
    let second = other.run(&jobs[0]).output;
    assert!(
        first.iter().all(|o| *o == second && o.is_some()),
        "{first:?} vs {second:?}"
    );
}

#[test]
fn deduction_checks() {
    let check = |predicted: &str, gold: &str| {
        exec()
            .run(&Job::Deduction {
                predicted: predicted.into(),
                gold: gold.into(),
            })
            .correct
    };
    assert_eq!(check("[1,2]", "[1, 2]"), Some(true));
    assert_eq!(check("{2, 1}", "{1, 2}"), Some(true));
    assert_eq!(check("1.0", "1"), Some(true));
    assert_eq!(check("True", "1"), Some(true));
    assert_eq!(check("(1, 2)", "[1, 2]"), Some(false));
    assert_eq!(check("'a'", "b'a'"), Some(false));
    assert_eq!(check("{'a': 1}", "{'a': 2}"), Some(false));
    assert_eq!(check("not a literal", "1"), Some(false));
    assert_eq!(check("__import__('os')", "1"), Some(false));
    assert_eq!(check("", "None"), Some(false));
}

#[test]
fn abduction_checks() {
    let check = |program: &str, input: &str, gold: &str| {
        exec().run(&Job::Abduction {
            program: program.into(),
            predicted_input: input.into(),
            gold_output: gold.into(),
        })
    };
    let double = "def f(x):\n    return x * 2";
    assert!(check(double, "2", "4").is_correct());
    assert!(check(double, "2.0", "4").is_correct(), "4.0 == 4");
    assert!(check(double, "'ab'", "'abab'").is_correct());
    assert!(!check(double, "3", "4").is_correct());
    // Any input that reproduces the output counts.
    let first = "def f(xs):\n    return xs[0]";
    assert!(check(first, "[7, 1]", "7").is_correct());
    assert!(check(first, "[7, 9, 9]", "7").is_correct());
    // Errors and timeouts are wrong answers, with the reason kept.
    let r = check(first, "[]", "7");
    assert_eq!((r.status, r.correct), (Status::Error, Some(false)), "{r:?}");
    assert!(r.error.unwrap().contains("IndexError"));
    let r = check("def f(x):\n    while x:\n        pass", "True", "None");
    assert_eq!((r.status, r.correct), (Status::Timeout, Some(false)));
}

#[test]
fn induction_checks() {
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(i, o)| (i.to_string(), o.to_string()))
            .collect()
    };
    let check = |program: &str, p: &[(&str, &str)]| {
        exec().run(&Job::Induction {
            program: program.into(),
            pairs: pairs(p),
        })
    };
    let hidden = [("1", "2"), ("5", "6"), ("-1", "0")];
    assert!(check("def f(x):\n    return x + 1", &hidden).is_correct());
    assert!(check("def f(x):\n    return 1 + x * 1.0", &hidden).is_correct());
    assert!(!check("def f(x):\n    return x + 2", &hidden).is_correct());
    // One wrong pair fails the whole answer, also when it raises.
    let r = check("def f(x):\n    return 1 // (x + 1) * 0 + x + 1", &hidden);
    assert!(!r.is_correct());
    assert!(r.error.unwrap().contains("ZeroDivisionError"));
    let r = check(
        "def f(x, y):\n    return x",
        &[("1, 2", "1"), ("'a', None", "'a'")],
    );
    assert!(r.is_correct(), "{r:?}");
    let r = exec().run(&Job::Induction {
        program: "def f(x):\n    return x".into(),
        pairs: vec![],
    });
    assert_eq!(r.status, Status::InvalidJob);
}

/// A submitted batch runs while the caller does something else: waiting afterwards takes less
/// than the batch's own time, and gives what `run_batch` gives, in input order.
#[test]
fn submitted_jobs_run_while_the_caller_works() {
    let jobs: Vec<Job> = (0..4)
        .map(|i| Job::Run {
            program: format!("import time\ndef f(x):\n    time.sleep(0.3)\n    return x * {i}"),
            input: "7".into(),
        })
        .collect();
    let pending = exec().submit(&jobs);
    std::thread::sleep(Duration::from_millis(900));
    let t = std::time::Instant::now();
    let (results, busy) = pending.wait();
    let waited = t.elapsed();
    let outputs: Vec<Option<String>> = results.iter().map(|r| r.output.clone()).collect();
    assert_eq!(outputs, ["0", "7", "14", "21"].map(|s| Some(s.to_string())));
    // 4 jobs of 0.3 s on 2 workers: at least 0.6 s of work, done while the caller slept.
    assert!(busy >= Duration::from_millis(600), "{busy:?}");
    assert!(waited < busy, "waited {waited:?} for a batch busy {busy:?}");
    let again: Vec<Option<String>> = exec()
        .run_batch(&jobs)
        .into_iter()
        .map(|r| r.output)
        .collect();
    assert_eq!(again, outputs);
}
