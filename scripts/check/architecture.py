#!/usr/bin/env python3
"""Checks the library's shape against docs/ARCHITECTURE.md (ctest entry `architecture`).

1. Include directions: every `#include "m/..."` in lib/<module>/ names the module itself or one
   that the "Modules" table of docs/ARCHITECTURE.md lets it include; every folder under lib/ is in
   the table. A new back-edge fails with the file and line.
2. Test files: tests/test_<tag>.cpp holds only TEST_CASEs tagged [<tag>], and its tag is in
   tests/CMakeLists.txt's NAS_TEST_TAGS (one ctest entry each), and the other way round.
3. Function length: no function definition in lib/ (.cpp and .h) runs over MAX_LINES lines,
   except those listed in LONG_FUNCTIONS, which may not grow past their listed length (the list
   only shrinks).

Usage: architecture.py [SOURCE_DIR]   (default: the checkout holding this script). Exit 1 on a
violation, with one line per violation on stderr. `architecture.py --self-test` first checks that
both checks catch what they are for, on a small tree of its own. Python standard library only.
"""
import pathlib
import re
import sys

MAX_LINES = 100
# Functions allowed over MAX_LINES, "lib/<file>:<name>": their length, which may only shrink. Empty
# since issue 22 split the last of them (app::run_search was 403 lines, train_supernet 261).
LONG_FUNCTIONS = {}

ROW = re.compile(r"^\|\s*`([a-z_]+)`\s*\|[^|]*\|([^|]*)\|\s*$")
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"](?:\.\./)*([a-z_]+)/[^">]+[">]')


def module_map(doc):
    """The "## Modules" table: module -> the modules it may include."""
    allowed, inside = {}, False
    for line in doc.read_text().splitlines():
        if line.startswith("## "):
            inside = line.strip() == "## Modules"
        m = ROW.match(line) if inside else None
        if m:
            allowed[m.group(1)] = set(re.findall(r"`([a-z_]+)`", m.group(2)))
    return allowed


def include_errors(root, allowed):
    errors = []
    lib = root / "lib"
    for folder in sorted(p for p in lib.iterdir() if p.is_dir()):
        if folder.name not in allowed:
            errors.append(f"lib/{folder.name}/: not in the Modules table of docs/ARCHITECTURE.md")
    for src in sorted(lib.rglob("*")):
        if src.suffix not in (".h", ".cpp"):
            continue
        module = src.relative_to(lib).parts[0]
        for n, line in enumerate(src.read_text().splitlines(), 1):
            m = INCLUDE.match(line)
            if not m or m.group(1) == module or not (lib / m.group(1)).is_dir():
                continue
            if m.group(1) not in allowed.get(module, set()):
                errors.append(f"{src.relative_to(root)}:{n}: {module} may not include {m.group(1)} "
                              f"(docs/ARCHITECTURE.md, Modules)")
    return errors


def code_only(line):
    """The line without string/char literals and // comments (so their braces do not count)."""
    out, i, quote = [], 0, None
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
                out.append(ch)
        elif ch in "\"'":
            quote = ch
            out.append(ch)
        elif line.startswith("//", i):
            break
        else:
            out.append(ch)
        i += 1
    return "".join(out)


NOT_FUNCTION = re.compile(r"^(namespace|struct|class|enum|union|using|typedef|extern|static_assert|template\s*<[^>]*>\s*(struct|class))\b")


def functions(path):
    """(name, first line, length) of each function definition at namespace or class level: a
    statement there that has a parameter list and opens a body (in-class member functions too)."""
    lines = [code_only(l) for l in path.read_text().splitlines()]
    stack = []          # the open braces: True for a namespace's or a class body's, False for any other
    statement, first = "", None  # the text at that level since the last ; { or }, and its first line
    found, body = [], None       # body: (name, first line) of the function being read
    for i, line in enumerate(lines):
        if line.lstrip().startswith("#"):
            continue  # preprocessor
        for ch in line:
            depth = stack.count(False)
            if ch == "{":
                head = statement.strip()
                # Namespaces and class bodies are scopes that functions are defined in.
                is_namespace = depth == 0 and re.match(
                    r'(inline\s+)?namespace\b|extern\s+""|((template\s*<[^>]*>\s*)?(class|struct|union)\s+\w+[^(]*$)', head) is not None
                if depth == 0 and body is None and not is_namespace and "(" in head and \
                        not NOT_FUNCTION.match(head) and first is not None:
                    call = head.split("=")[0] if "operator" not in head else head
                    m = re.search(r"([A-Za-z_~][\w:~]*)\s*\(", call)
                    body = (m.group(1).split("::")[-1] if m else "?", first)
                stack.append(is_namespace)
                statement, first = "", None
            elif ch == "}":
                stack.pop()
                if body is not None and stack.count(False) == 0:
                    found.append((body[0], body[1] + 1, i - body[1] + 1))
                    body = None
                statement, first = "", None
            elif depth == 0:
                if ch == ";" or (ch == ":" and statement.strip() in ("public", "private", "protected")):
                    statement, first = "", None  # a declaration ends, or an access specifier
                    continue
                if first is None and not ch.isspace():
                    first = i if re.match(r"[A-Za-z_~]", ch) else None
                    if first is None:
                        statement = "#"  # not a declaration: no function starts here
                statement += ch
        if statement:
            statement += " "
    return found


def length_errors(root, long_functions=None):
    long_functions = LONG_FUNCTIONS if long_functions is None else long_functions
    errors = []
    seen = set()
    for src in sorted(p for p in (root / "lib").rglob("*") if p.suffix in (".cpp", ".h")):
        rel = str(src.relative_to(root))
        for name, first, length in functions(src):
            key = f"{rel}:{name}"
            limit = long_functions.get(key, MAX_LINES)
            if key in long_functions:
                seen.add(key)
            if key in long_functions and length <= MAX_LINES:
                errors.append(f"{rel}:{first}: {name} runs {length} lines now; remove it from LONG_FUNCTIONS")
            elif length > limit:
                errors.append(f"{rel}:{first}: {name} runs {length} lines; at most {limit} "
                              f"(split it into named steps)")
    for key in sorted(set(long_functions) - seen):
        errors.append(f"{key}: listed in LONG_FUNCTIONS but not found; remove it from the list")
    return errors


TEST_CASE = re.compile(r'TEST_CASE\(\s*((?:"(?:\\.|[^"\\])*"\s*)+),\s*"([^"]*)"\s*\)')
ANY_TEST = re.compile(r'\b(TEST_CASE|TEST_CASE_METHOD|TEMPLATE_TEST_CASE|SCENARIO)\s*\(')


def test_tag_errors(root):
    errors = []
    tests = root / "tests"
    cmake = (tests / "CMakeLists.txt").read_text()
    m = re.search(r"set\(NAS_TEST_TAGS([^)]*)\)", cmake)
    listed = set(m.group(1).split()) if m else set()
    files = {p.stem[len("test_"):]: p for p in tests.glob("test_*.cpp") if p.name != "test_main.cpp"}
    for tag in sorted(set(files) - listed):
        errors.append(f"tests/test_{tag}.cpp: its tag is not in NAS_TEST_TAGS (tests/CMakeLists.txt): it never runs")
    for tag in sorted(listed - set(files)):
        errors.append(f"tests/CMakeLists.txt: NAS_TEST_TAGS lists {tag}, but tests/test_{tag}.cpp does not exist")
    for path in sorted(tests.glob("*.cpp")):
        tag = path.stem[len("test_"):] if path.stem.startswith("test_") and path.name != "test_main.cpp" else None
        text = path.read_text()
        checked = {case.start() for case in TEST_CASE.finditer(text)} if tag else set()
        for case in ANY_TEST.finditer(text):
            line = text.count("\n", 0, case.start()) + 1
            if case.start() not in checked or case.group(1) != "TEST_CASE":
                errors.append(f"tests/{path.name}:{line}: a {case.group(1)} outside the form TEST_CASE(\"name\", "
                              f"\"[tag]\") in a tests/test_<tag>.cpp: ctest would not run it")
        for case in TEST_CASE.finditer(text) if tag else []:
            tags = set(re.findall(r"\[([^\]]*)\]", case.group(2)))
            if tag not in tags or tags & (listed - {tag}):
                line = text.count("\n", 0, case.start()) + 1
                errors.append(f"tests/{path.name}:{line}: tagged {case.group(2)}; a test in this file is tagged [{tag}] "
                              f"and with no other file's tag (it would run in two ctest entries)")
    return errors


def self_test():
    """Both checks on a made-up tree: a clean one passes; a back-edge, an undeclared module and a
    long function are each reported."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        (root / "docs").mkdir()
        (root / "docs" / "ARCHITECTURE.md").write_text(
            "## Modules\n| module | for | may include |\n|---|---|---|\n| `low` | x | |\n| `high` | y | `low` |\n")
        for m in ("low", "high"):
            (root / "lib" / m).mkdir(parents=True)
        (root / "lib" / "high" / "h.cpp").write_text('#include "low/l.h"\nnamespace n {\nint f() {\n  return 1;\n}\n}\n')
        (root / "lib" / "low" / "l.h").write_text("#pragma once\n")
        allowed = module_map(root / "docs" / "ARCHITECTURE.md")
        assert allowed == {"low": set(), "high": {"low"}}, allowed
        assert include_errors(root, allowed) == [] and length_errors(root, {}) == []
        (root / "lib" / "low" / "l.cpp").write_text('#include "high/h.h"\n')
        assert any("low may not include high" in e for e in include_errors(root, allowed))
        (root / "lib" / "low" / "l.cpp").write_text('#include <high/h.h>\n#include "../high/h.h"\n')
        assert len([e for e in include_errors(root, allowed) if "low may not include high" in e]) == 2
        (root / "lib" / "extra").mkdir()
        assert any("lib/extra/" in e for e in include_errors(root, allowed))
        body = "".join(f"  x += {i};  // {{\n" for i in range(MAX_LINES))
        (root / "lib" / "high" / "long.cpp").write_text(
            f'namespace n {{\nvoid long_one(int x) {{\n  const char* s = "}}";\n{body}}}\n}}\n')
        errors = length_errors(root, {})
        assert len(errors) == 1 and "long_one runs 103 lines" in errors[0], errors
        (root / "lib" / "high" / "long.cpp").write_text(
            f'namespace n {{\nclass C {{\n public:\n  void method(int x) {{\n{body}  }}\n}};\n}}\n')
        errors = length_errors(root, {})
        assert len(errors) == 1 and "method runs 102 lines" in errors[0], errors
        (root / "tests").mkdir()
        (root / "tests" / "CMakeLists.txt").write_text("set(NAS_TEST_TAGS alpha beta)\n")
        (root / "tests" / "test_alpha.cpp").write_text('TEST_CASE("one", "[alpha]") {}\nTEST_CASE("two"\n "more", "[alpha][.]") {}\n')
        (root / "tests" / "test_beta.cpp").write_text('TEST_CASE("three", "[beta]") {}\n')
        assert test_tag_errors(root) == []
        (root / "tests" / "test_beta.cpp").write_text('TEST_CASE("three", "[alpha]") {}\nTEST_CASE("four", "[beta][alpha]") {}\n'
                                                       'TEST_CASE("five") {}\n')
        (root / "tests" / "test_gamma.cpp").write_text("")
        errors = test_tag_errors(root)
        assert len(errors) == 4 and "never runs" in errors[0], errors
        assert "test_beta.cpp:3: a TEST_CASE outside" in errors[1], errors
        assert "test_beta.cpp:1: tagged [alpha]" in errors[2] and "test_beta.cpp:2: tagged [beta][alpha]" in errors[3], errors
    print("architecture --self-test: ok")


def main():
    if sys.argv[1:2] == ["--self-test"]:
        self_test()
        sys.argv.pop(1)
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[2])
    allowed = module_map(root / "docs" / "ARCHITECTURE.md")
    if not allowed:
        print("docs/ARCHITECTURE.md: expected a \"## Modules\" table, found none", file=sys.stderr)
        return 1
    errors = include_errors(root, allowed) + length_errors(root) + test_tag_errors(root)
    for e in errors:
        print(e, file=sys.stderr)
    print(f"architecture: {len(allowed)} modules, include directions, function lengths and test tags: "
          f"{'ok' if not errors else str(len(errors)) + ' violation(s)'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
