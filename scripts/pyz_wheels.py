"""Wheel-tag helpers for scripts/build_pyz.sh (stdlib only).

    python3 scripts/pyz_wheels.py platforms ARCH GLIBC
        the ``--platform`` values pip needs to accept manylinux wheels for ARCH that run on
        glibc >= GLIBC, one per line, newest first. pip does not expand ``manylinux_2_28_x``
        to older tags by itself, so every one is listed (down to manylinux2014/_2_17, and
        manylinux2010/manylinux1 on x86_64).
    python3 scripts/pyz_wheels.py report WHEEL...
        a table of the wheels (name, version, tags, the glibc each needs) and, last, the line
        ``glibc-min X.Y <wheels that need it>``: the oldest glibc all of them run on.
    python3 scripts/pyz_wheels.py binary WHEEL...
        the project names of the wheels that are not pure Python (their ABI tag is not none).
    python3 scripts/pyz_wheels.py requiredby NAME WHEEL...
        which of the wheels require project NAME (from their METADATA Requires-Dist).
"""

import os
import re
import sys
import zipfile

#: Legacy manylinux aliases and the glibc they stand for (PEP 599/571/513).
LEGACY = {"manylinux2014": (2, 17), "manylinux2010": (2, 12), "manylinux1": (2, 5)}

#: Oldest glibc with a manylinux tag per architecture.
FLOOR = {"x86_64": (2, 5), "i686": (2, 5), "aarch64": (2, 17), "armv7l": (2, 17),
         "ppc64le": (2, 17), "s390x": (2, 17)}


def parse_glibc(text):
    """'2.28' -> (2, 28)."""
    major, minor = text.split(".")
    return int(major), int(minor)


def platforms(arch, glibc):
    """``--platform`` values for ``arch``, glibc ``glibc`` and older, newest first."""
    major, newest = glibc
    floor = FLOOR.get(arch, (2, 17))[1]
    tags = ["manylinux_{}_{}_{}".format(major, minor, arch)
            for minor in range(newest, floor - 1, -1)]
    for legacy, (_, minor) in sorted(LEGACY.items(), key=lambda kv: -kv[1][1]):
        if minor <= newest and minor >= floor:
            tags.append("{}_{}".format(legacy, arch))
    return tags


def wheel_tags(filename):
    """(name, version, python tags, abi tags, platform tags) of a wheel file name."""
    base = os.path.basename(filename)[:-len(".whl")]
    parts = base.split("-")
    name, version = parts[0], parts[1]
    py, abi, plat = parts[-3:]
    return name, version, py.split("."), abi.split("."), plat.split(".")


def tag_glibc(tag):
    """The glibc a platform tag needs: (2, 28), None for 'any', 'unknown' for linux_*."""
    if tag == "any":
        return None
    m = re.match(r"manylinux_(\d+)_(\d+)_", tag)
    if m:
        return int(m.group(1)), int(m.group(2))
    for legacy, version in LEGACY.items():
        if tag.startswith(legacy + "_"):
            return version
    return "unknown"


def wheel_glibc(filename):
    """The oldest glibc a wheel runs on (any of its tags suffices), or None if pure."""
    needs = [tag_glibc(t) for t in wheel_tags(filename)[4]]
    known = [n for n in needs if isinstance(n, tuple)]
    if known:
        return min(known)
    return None if None in needs else "unknown"


def report(wheels):
    """Print the table and the ``glibc-min`` line; return the minimum."""
    rows, worst, by = [], None, []
    for path in sorted(wheels, key=lambda p: os.path.basename(p).lower()):
        name, version, _, abi, plat = wheel_tags(path)
        need = wheel_glibc(path)
        label = ("-" if need is None else "?" if need == "unknown"
                 else "{}.{}".format(*need))
        rows.append((name, version, ".".join(abi), ".".join(plat), label))
        if isinstance(need, tuple):
            if worst is None or need > worst:
                worst, by = need, [name]
            elif need == worst:
                by.append(name)
    width = [max(len(r[i]) for r in rows) for i in range(4)] if rows else [0] * 4
    for r in rows:
        print("  {:<{}}  {:<{}}  {:<{}}  glibc {:>5}  {}".format(
            r[0], width[0], r[1], width[1], r[2], width[2], r[4], r[3]))
    if worst is None:
        print("glibc-min none (pure Python only)")
    else:
        print("glibc-min {}.{} {}".format(worst[0], worst[1], " ".join(by)))
    return worst


def binary(wheels):
    """Names of the wheels with compiled code."""
    for path in sorted(wheels):
        name, _, _, abi, _ = wheel_tags(path)
        if abi != ["none"]:
            print(name)


def normalize(name):
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def required_by(name, wheels):
    """Names of the wheels whose METADATA has a Requires-Dist on ``name``."""
    want, users = normalize(name), []
    for path in sorted(wheels):
        with zipfile.ZipFile(path) as z:
            meta = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
            text = z.read(meta[0]).decode("utf-8", "replace") if meta else ""
        for line in text.splitlines():
            if line.startswith("Requires-Dist:"):
                req = re.match(r"Requires-Dist:\s*([A-Za-z0-9._-]+)", line)
                if req and normalize(req.group(1)) == want and "extra ==" not in line:
                    users.append(wheel_tags(path)[0])
                    break
    return users


def main(argv):
    if len(argv) >= 3 and argv[0] == "platforms":
        print("\n".join(platforms(argv[1], parse_glibc(argv[2]))))
        return 0
    if argv and argv[0] == "report":
        report(argv[1:])
        return 0
    if argv and argv[0] == "binary":
        binary(argv[1:])
        return 0
    if len(argv) >= 2 and argv[0] == "requiredby":
        print(" ".join(required_by(argv[1], argv[2:])))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
