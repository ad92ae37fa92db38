"""`ivr users add|passwd|remove|list`: the logins of the service's web pages.

The users file is the one `ivr serve` reads: `--file`, else `web.users` of `--config`, else
$IVR_USERS, else users.json here. Passwords come from a prompt (typed twice, not echoed) or,
for scripts, one line on standard input with `--password-stdin`; never from the command line.
"""

import argparse
import getpass
import os
import sys
from pathlib import Path

from ivr.errors import UserError
from ivr.web.users import ROLES, UserStore, check_password


def _store(args) -> UserStore:
    if args.file:
        return UserStore(Path(args.file))
    from ivr.service.config import load_config

    return UserStore(load_config(Path(args.config) if args.config else None).auth.users_file)


def _password(args, name: str) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise UserError("--password-stdin: nothing on standard input", "pipe one line: the password")
        return check_password(line.rstrip("\r\n"))
    if not sys.stdin.isatty():
        raise UserError("no terminal to ask for the password", "use --password-stdin and pipe it in")
    first = check_password(getpass.getpass(f"Password for {name}: "))
    if getpass.getpass("Again: ") != first:
        raise UserError("the two passwords differ")
    return first


def cmd_users(args) -> int:
    store = _store(args)
    if args.users_cmd == "add":
        store.set_user(args.name, args.role, _password(args, args.name), must_exist=False, must_not_exist=True,
                       sip=args.sip)
        print(f"added {args.name} ({args.role}{', ' + args.sip if args.sip else ''}) to {store.path}")
    elif args.users_cmd == "passwd":
        if args.name not in store.read():   # before asking for a password that would go nowhere
            raise UserError(f"no user {args.name!r} in {store.path}", "add one with `ivr users add NAME --role ROLE`")
        store.set_user(args.name, args.role, _password(args, args.name), must_exist=True)
        print(f"changed the password of {args.name}; their open sessions end")
    elif args.users_cmd == "sip":
        store.set_user(args.name, None, None, must_exist=True, sip=args.address.strip())
        print(f"{args.name}: phone {args.address.strip() or '(none)'}")
    elif args.users_cmd == "remove":
        store.remove(args.name)
        print(f"removed {args.name} from {store.path}")
    else:
        users = store.read()
        if not users:
            print(f"no users in {store.path}" + ("" if os.path.exists(store.path) else " (no such file yet)"))
        for user in sorted(users.values(), key=lambda u: u.name):
            print(f"{user.name}\t{user.role}" + (f"\t{user.sip}" if user.sip else ""))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("users", help="manage the logins of the web pages (roles: " + ", ".join(ROLES) + ")")
    p.add_argument("--config", help="the serve config whose web.users file to change")
    p.add_argument("--file", help="the users file itself (default: web.users of --config, $IVR_USERS or users.json)")
    usub = p.add_subparsers(dest="users_cmd", required=True)
    pa = usub.add_parser("add", help="add a user (asks for the password)")
    pa.add_argument("name")
    pa.add_argument("--role", choices=ROLES, required=True)
    pa.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    pa.add_argument("--sip", help="an agent's phone, e.g. sip:alice@127.0.0.1:5070 (the queue dials it)")
    pp = usub.add_parser("passwd", help="set a user's password (and optionally role)")
    pp.add_argument("name")
    pp.add_argument("--role", choices=ROLES, help="also change the role")
    pp.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    ps = usub.add_parser("sip", help="set (or with \"\" remove) an agent's phone address")
    ps.add_argument("name")
    ps.add_argument("address", help="sip:alice@127.0.0.1:5070, or \"\" to remove it")
    pr = usub.add_parser("remove", help="remove a user")
    pr.add_argument("name")
    usub.add_parser("list", help="names and roles")
    p.set_defaults(func=cmd_users)
