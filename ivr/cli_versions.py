"""`ivr flows`: publish immutable flow versions, list them, move aliases, roll back, diff, canaries.

The versions live in PostgreSQL when given a database (`--database URL`, else
$IVR_VERSIONS_DATABASE, else `flows.versions_database` of `--config`: every node of a cluster
sees them), else in a folder (`--dir`, $IVR_VERSIONS_DIR, `flows.versions_dir`, ./flows.d);
`ivr serve` serves them through routes like `versions:NAME@live`. `ivr flows import DIR` copies
a folder's versions and aliases into the database.
"""

import argparse
import os
import sys
from pathlib import Path

from ivr.errors import UserError


def _store(args):
    from ivr.flow.versions_store import DirVersionStore, open_version_store

    if args.dir and args.database:
        raise UserError("give --dir or --database, not both", "--database URL keeps versions in PostgreSQL")
    if args.database:
        return open_version_store(Path("flows.d"), args.database)
    if args.dir:
        return DirVersionStore(Path(args.dir))
    if os.environ.get("IVR_VERSIONS_DATABASE", "off") != "off":
        return open_version_store(Path("flows.d"), os.environ["IVR_VERSIONS_DATABASE"])
    if os.environ.get("IVR_VERSIONS_DIR"):
        return DirVersionStore(Path(os.environ["IVR_VERSIONS_DIR"]))
    if args.config:
        from ivr.service.config import load_config

        cfg = load_config(Path(args.config))
        return open_version_store(cfg.versions_dir, cfg.versions_database)
    return DirVersionStore(Path("flows.d"))


def cmd_publish(args) -> int:
    from ivr.flow import versions
    from ivr.flow.versions_store import default_author

    store = _store(args)
    manifest, new, warnings = versions.publish(store, Path(args.flow), args.name, args.author or default_author(),
                                     args.message or "", args.alias)
    from ivr.flow.versions_store import DirVersionStore

    where = (Path(store.where) / manifest.name / manifest.label if isinstance(store, DirVersionStore)
             else f"{store.where} ({manifest.name} {manifest.label})")
    if new:
        print(f"published {manifest.name} {manifest.label} ({manifest.hash[:12]}, {len(manifest.files)} files) "
              f"in {where}")
    else:
        print(f"{manifest.name}: unchanged since {manifest.label} ({manifest.hash[:12]}); no new version")
    if args.alias:
        print(f"{manifest.name}@{args.alias} -> {manifest.label}")
    for warning in warnings:      # as `ivr validate` shows them: published, but worth a look
        print(warning, file=sys.stderr)
    return 0


def cmd_list(args) -> int:
    from ivr.flow.versions import Canary, check_name

    store = _store(args)
    names = [check_name(args.name, "flow name")] if args.name else store.names()
    if args.name and args.name not in store.names():
        raise UserError(f"no published flow named {args.name!r} in {store.where}",
                        f"published: {', '.join(store.names()) or 'none'}")
    if not names:
        print(f"no published flows in {store.where}; publish one with `ivr flows publish FLOW.yaml`",
              file=sys.stderr)
    for name in names:
        state = store.state(name)
        by_version: dict[int, list[str]] = {}
        for alias, number in sorted(state["aliases"].items()):
            by_version.setdefault(int(number), []).append(alias)
        print(name)
        for m in store.versions(name):
            aliases = f"  <- {', '.join(by_version[m.version])}" if m.version in by_version else ""
            message = f"  {m.message}" if m.message else ""
            print(f"  {m.label:>4}  {m.created}  {m.hash[:12]}  {m.author or '-'}{message}{aliases}")
        for alias, spec in sorted(state["canaries"].items()):
            print(f"  canary on {alias}: {Canary.from_dict(spec).describe()}")
    return 0


def cmd_alias(args) -> int:
    from ivr.flow import versions

    number = versions.set_alias(_store(args), args.name, args.alias, args.version)
    print(f"{args.name}@{args.alias} -> v{number}")
    return 0


def cmd_rollback(args) -> int:
    from ivr.flow import versions

    old, new = versions.rollback(_store(args), args.name, args.alias, args.to)
    print(f"{args.name}@{args.alias}: v{old} -> v{new}")
    return 0


def cmd_diff(args) -> int:
    from ivr.flow import versions

    text = versions.diff(_store(args), args.name, args.v1, args.v2)
    print(text, end="") if text else print(f"{args.name} {args.v1} and {args.v2}: no differences")
    return 0


def cmd_canary(args) -> int:
    from ivr.flow import versions

    store = _store(args)
    if args.off:
        versions.set_canary(store, args.name, args.alias, None)
        print(f"{args.name}@{args.alias}: no canary")
        return 0
    if args.version is None:
        raise UserError("which version is the canary?", f"e.g. `ivr flows canary {args.name} --version 3 --percent 10`"
                        " (or --off)")
    callers = tuple(c.strip() for c in (args.callers or "").split(",") if c.strip())
    canary = versions.set_canary(store, args.name, args.alias,
                                 versions.Canary(args.version, float(args.percent or 0), callers))
    print(f"{args.name}@{args.alias}: canary {canary.describe()}")
    return 0


def cmd_import(args) -> int:
    """Copy every version and the aliases of a versions folder into the (PostgreSQL) store."""
    from ivr.flow.versions_store import DirVersionStore

    source, target = DirVersionStore(Path(args.source)), _store(args)
    if not hasattr(target, "import_version"):
        raise UserError("import copies a versions folder into PostgreSQL, but no database was given",
                        "add --database postgresql://USER@HOST:PORT/DB (or IVR_VERSIONS_DATABASE)")
    if not source.names():
        raise UserError(f"no published flows in {source.where}", "give the folder `ivr flows publish --dir` wrote")
    for name in source.names():
        copied = kept = 0
        for manifest in source.versions(name):
            source.flow_path(name, manifest.version)     # refuses a version edited since it was published
            contents = {rel: source.read_file(name, manifest.version, rel) for rel in manifest.files}
            if target.import_version(manifest, contents):
                copied += 1
            else:
                kept += 1
        state, theirs = source.state(name), target.state(name)
        if any(state.values()) and not any(theirs.values()):
            target.update_state(name, lambda s, new=state: s.update({k: new[k] for k in ("aliases", "history",
                                                                                           "canaries")}))
            aliases = ", ".join(f"{a} -> v{v}" for a, v in sorted(state["aliases"].items())) or "none"
        else:
            aliases = "kept as they were in the database" if any(theirs.values()) else "none"
        print(f"{name}: {copied} version(s) copied, {kept} already there; aliases: {aliases}")
    print(f"imported into {target.where}")
    return 0


def add_commands(sub) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", help="the versions folder (default: $IVR_VERSIONS_DIR, the config's "
                        "flows.versions_dir, or ./flows.d)")
    common.add_argument("--database", help="keep versions in PostgreSQL, shared by every node "
                        "(postgresql://USER@HOST:PORT/DB; default: $IVR_VERSIONS_DATABASE, flows.versions_database)")
    common.add_argument("--config", help="read flows.versions_database / flows.versions_dir from this serve config")
    p = sub.add_parser("flows", help="published flow versions: publish, list, alias, rollback, diff, canary, "
                       "import")
    fsub = p.add_subparsers(dest="flows_cmd", required=True)

    pp = fsub.add_parser("publish", parents=[common], help="publish a flow as a new immutable version")
    pp.add_argument("flow", help="the flow's YAML file (its subflows, FAQ and recordings are copied too)")
    pp.add_argument("--name", help="the published name (default: the flow's name:)")
    pp.add_argument("-m", "--message", help="what changed")
    pp.add_argument("--author", help="default: $USER")
    pp.add_argument("--alias", help="point this alias (e.g. live) at the new version")
    pp.set_defaults(func=cmd_publish)

    pl = fsub.add_parser("list", parents=[common], help="versions, aliases and canaries")
    pl.add_argument("name", nargs="?")
    pl.set_defaults(func=cmd_list)

    pa = fsub.add_parser("alias", parents=[common], help="point an alias at a version")
    pa.add_argument("name")
    pa.add_argument("alias")
    pa.add_argument("version", help="e.g. 3 or v3")
    pa.set_defaults(func=cmd_alias)

    pr = fsub.add_parser("rollback", parents=[common], help="move an alias back (to the version it named before)")
    pr.add_argument("name")
    pr.add_argument("--to", help="the version to move it to")
    pr.add_argument("--alias", default="live")
    pr.set_defaults(func=cmd_rollback)

    pd = fsub.add_parser("diff", parents=[common], help="unified diff of two versions' files")
    pd.add_argument("name")
    pd.add_argument("v1")
    pd.add_argument("v2")
    pd.set_defaults(func=cmd_diff)

    pc = fsub.add_parser("canary", parents=[common], help="send a share of calls, or some callers, to another version")
    pc.add_argument("name")
    pc.add_argument("--alias", default="live", help="the alias the canary rides on (default: live)")
    pc.add_argument("--version", help="the canary's version")
    pc.add_argument("--percent", type=float, help="share of calls (by call id: a call always goes the same way)")
    pc.add_argument("--callers", help="caller number prefixes or ranges, comma-separated (+1555, +15550100..+15550199)")
    pc.add_argument("--off", action="store_true", help="end the canary")
    pc.set_defaults(func=cmd_canary)

    pi = fsub.add_parser("import", parents=[common], help="copy a versions folder (versions and aliases) into "
                         "the PostgreSQL store given by --database")
    pi.add_argument("source", help="the versions folder, e.g. flows.d")
    pi.set_defaults(func=cmd_import)
