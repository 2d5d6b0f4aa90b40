"""Installing a local CA's root into the trust stores of this machine, and taking it out again.

What mkcert does, with the same tools the distributions use, each store reported on its own:

- the system store: Debian/Ubuntu ``/usr/local/share/ca-certificates/`` + ``update-ca-certificates``;
  Fedora/RHEL ``/etc/pki/ca-trust/source/anchors/`` + ``update-ca-trust extract``. curl, wget, Python's
  ``ssl`` default and most programs read it;
- NSS databases (Firefox profiles, Chromium's ``~/.pki/nssdb``) through ``certutil`` (libnss3-tools),
  only those that exist: a browser that never ran has none;
- Java's ``cacerts`` through ``keytool``, unless the system store already feeds it (Debian's
  ca-certificates-java hook imports every system CA).

Install records what it added in ``CA_DIR/installed.json``; uninstall removes exactly those entries and
nothing else, so a CA someone else trusted stays trusted.

Example::

    plan = TrustPlan.for_ca(Path("ca"))
    for step in plan.install():          # or plan.install(dry_run=True) for the plan alone
        print(step.store, step.result, step.location)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tlskit.errors import InputError, TlskitError, option

DEBIAN_ANCHORS = Path("/usr/local/share/ca-certificates")
FEDORA_ANCHORS = Path("/etc/pki/ca-trust/source/anchors")
DEBIAN_JAVA_HOOK = Path("/etc/ca-certificates/update.d/jks-keystore")   # imports system CAs into cacerts
JAVA_STOREPASS = "changeit"     # the password every JDK ships cacerts with
RECORD_FILE = "installed.json"
STORES = frozenset({"system", "nss", "java"})


def parse_stores(names: list[str] | None) -> frozenset[str]:
    """``--store`` values (repeatable or comma-separated) -> store names; none given means all."""
    chosen = {part.strip().lower() for name in names or [] for part in name.split(",") if part.strip()}
    unknown = chosen - STORES
    if unknown:
        raise InputError(f"unknown trust store {', '.join(sorted(unknown))}", fix="use system, nss or java")
    return frozenset(chosen) or STORES


@dataclass
class Step:
    """One store: what was (or would be) done there. ``result``: added, removed, present, absent,
    would add, would remove, skipped or failed."""

    store: str
    location: str
    result: str
    detail: str = ""
    commands: list[list[str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


class TrustStoreError(TlskitError):
    """Some stores could not be changed (permission, a tool failed): exit 2, each store reported."""


@dataclass
class TrustPlan:
    """The root of a CA directory and the stores of this machine that can take it."""

    ca_dir: Path
    pem: bytes
    fingerprint: str            # SHA-256, hex
    subject: str
    home: Path

    @classmethod
    def for_ca(cls, ca_dir: Path, home: Path | None = None) -> TrustPlan:
        from tlskit.certificates import fingerprint, is_self_issued, to_pem
        from tlskit.files import load_certificates
        from tlskit.issue import CA_CERT_FILE
        from tlskit.names import name_to_slash

        path = ca_dir / CA_CERT_FILE
        if not path.exists():
            raise InputError(f"{ca_dir} is not a tlskit CA directory", f"{CA_CERT_FILE} is missing",
                             f"create one with: tlskit ca init --dir {ca_dir} --cn 'My CA'")
        cert = load_certificates(path)[0]
        if not is_self_issued(cert):
            # Trusting an intermediate as an anchor works, but hides its root from every verifier.
            raise InputError(f"{path} is an intermediate CA", "a trust store takes the root",
                             f"install the root's directory instead ({option('ca_dir')} of its parent)")
        digest = fingerprint(cert, "sha256").replace(":", "").lower()
        return cls(ca_dir, to_pem(cert), digest, name_to_slash(cert.subject), home or Path.home())

    # ---- names ------------------------------------------------------------------------------------

    @property
    def nickname(self) -> str:
        """The name of the entry in every store: the CA's subject and a fingerprint prefix, so two CAs
        with one name never collide and uninstall finds exactly this one."""
        slug = re.sub(r"[^A-Za-z0-9]+", "-", self.subject.rpartition("CN=")[2] or "ca").strip("-").lower()
        return f"tlskit-{slug[:40] or 'ca'}-{self.fingerprint[:12]}"

    def _record_path(self) -> Path:
        return self.ca_dir / RECORD_FILE

    def _recorded(self) -> list[dict]:
        try:
            return json.loads(self._record_path().read_text())["entries"]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def _record(self, entries: list[dict]) -> None:
        from tlskit.files import Output, write_outputs

        if entries:
            document = {"fingerprint_sha256": self.fingerprint, "entries": entries}
            write_outputs([Output.of(self._record_path(), (json.dumps(document, indent=2) + "\n").encode())], True)
        else:
            self._record_path().unlink(missing_ok=True)

    # ---- install ----------------------------------------------------------------------------------

    def install(self, dry_run: bool = False, stores: frozenset[str] = STORES) -> list[Step]:
        """Add the root to ``stores`` (system, nss, java; all by default)."""
        steps = [*([self._system(dry_run, add=True)] if "system" in stores else []),
                 *(self._nss(dry_run, add=True) if "nss" in stores else []),
                 *([self._java(dry_run, add=True)] if "java" in stores else [])]
        steps = [step for step in steps if step is not None]
        if not dry_run:
            entries = [entry for entry in self._recorded()
                       if not any(s.store == entry["store"] and s.location == entry["location"] for s in steps)]
            entries += [{"store": s.store, "location": s.location, "name": self.nickname}
                        for s in steps if s.result in ("added", "present") and s.commands]
            self._record(entries)
        _raise_for_failures(steps, "install")
        return steps

    def uninstall(self, dry_run: bool = False, stores: frozenset[str] = STORES) -> list[Step]:
        """Remove from ``stores`` what :meth:`install` added."""
        recorded = {(e["store"], e["location"]) for e in self._recorded()}
        steps = [*([self._system(dry_run, add=False, recorded=recorded)] if "system" in stores else []),
                 *(self._nss(dry_run, add=False, recorded=recorded) if "nss" in stores else []),
                 *([self._java(dry_run, add=False, recorded=recorded)] if "java" in stores else [])]
        steps = [step for step in steps if step is not None]
        if not dry_run:
            left = [e for e in self._recorded()
                    if not any(s.store == e["store"] and s.location == e["location"] and s.result == "removed"
                               for s in steps)]
            self._record(left)
        _raise_for_failures(steps, "uninstall")
        return steps

    # ---- the system store --------------------------------------------------------------------------

    def _system(self, dry_run: bool, add: bool, recorded: set | None = None) -> Step | None:
        if shutil.which("update-ca-certificates") and DEBIAN_ANCHORS.parent.is_dir():
            anchor, refresh = DEBIAN_ANCHORS / f"{self.nickname}.crt", ["update-ca-certificates"]
        elif shutil.which("update-ca-trust") and FEDORA_ANCHORS.parent.is_dir():
            anchor, refresh = FEDORA_ANCHORS / f"{self.nickname}.pem", ["update-ca-trust", "extract"]
        else:
            return Step("system", "-", "skipped", "no update-ca-certificates or update-ca-trust on this machine")
        location = str(anchor)
        if add:
            if anchor.exists() and anchor.read_bytes() == self.pem:
                return Step("system", location, "present", "already installed", [refresh])
            if dry_run:
                return Step("system", location, "would add", f"write {anchor}, then run {' '.join(refresh)}", [refresh])
            try:
                anchor.parent.mkdir(parents=True, exist_ok=True)
                temp = anchor.with_suffix(".tmp")
                temp.write_bytes(self.pem)
                os.chmod(temp, 0o644)
                os.replace(temp, anchor)
            except OSError as exc:
                return Step("system", location, "failed", f"{exc.strerror or exc}; run as root (sudo)")
            return _ran(Step("system", location, "added", "", [refresh]))
        if not anchor.exists():
            return Step("system", location, "absent", "not installed")
        if dry_run:
            return Step("system", location, "would remove", f"delete {anchor}, then run {' '.join(refresh)}", [refresh])
        try:
            anchor.unlink()
        except OSError as exc:
            return Step("system", location, "failed", f"{exc.strerror or exc}; run as root (sudo)")
        return _ran(Step("system", location, "removed", "", [refresh]))

    # ---- NSS: Firefox and Chromium ------------------------------------------------------------------

    def nss_databases(self) -> list[str]:
        """Existing NSS databases of this user, as certutil names them (``sql:DIR`` or ``dbm:DIR``)."""
        candidates = [self.home / ".pki" / "nssdb"]
        for base in (self.home / ".mozilla" / "firefox", self.home / "snap" / "firefox" / "common" / ".mozilla" / "firefox"):
            if base.is_dir():
                candidates += sorted(p for p in base.iterdir() if p.is_dir())
        found = []
        for directory in candidates:
            if (directory / "cert9.db").exists():
                found.append(f"sql:{directory}")
            elif (directory / "cert8.db").exists():
                found.append(f"dbm:{directory}")
        return found

    def _nss(self, dry_run: bool, add: bool, recorded: set | None = None) -> list[Step]:
        databases = self.nss_databases()
        if not databases:
            return [Step("nss", "-", "skipped", "no Firefox or Chromium certificate database for this user")]
        certutil = shutil.which("certutil")
        if certutil is None:
            return [Step("nss", db, "skipped", "certutil is not installed (apt install libnss3-tools)")
                    for db in databases]
        steps = []
        for db in databases:
            present = _run([certutil, "-L", "-d", db, "-n", self.nickname]).returncode == 0
            if add:
                command = [certutil, "-A", "-d", db, "-t", "C,,", "-n", self.nickname, "-i",
                           str(self.ca_dir / "ca.pem")]
                if present:
                    steps.append(Step("nss", db, "present", "already installed", [command]))
                elif dry_run:
                    steps.append(Step("nss", db, "would add", "", [command]))
                else:
                    steps.append(_ran(Step("nss", db, "added", "", [command])))
            else:
                command = [certutil, "-D", "-d", db, "-n", self.nickname]
                if not present:
                    steps.append(Step("nss", db, "absent", "not installed"))
                elif recorded is not None and ("nss", db) not in recorded:
                    steps.append(Step("nss", db, "skipped", "not added by tlskit ca install; left alone"))
                elif dry_run:
                    steps.append(Step("nss", db, "would remove", "", [command]))
                else:
                    steps.append(_ran(Step("nss", db, "removed", "", [command])))
        return steps

    # ---- Java ---------------------------------------------------------------------------------------

    def java_keystore(self) -> tuple[str, Path] | None:
        keytool = shutil.which("keytool")
        if keytool is None:
            return None
        home = Path(os.environ["JAVA_HOME"]) if os.environ.get("JAVA_HOME") else Path(os.path.realpath(keytool)).parent.parent
        for candidate in (home / "lib" / "security" / "cacerts", home / "jre" / "lib" / "security" / "cacerts"):
            if candidate.exists():
                return keytool, Path(os.path.realpath(candidate))
        return None

    def _java(self, dry_run: bool, add: bool, recorded: set | None = None) -> Step | None:
        found = self.java_keystore()
        if found is None:
            return Step("java", "-", "skipped", "no keytool (no Java) on this machine")
        keytool, keystore = found
        location = str(keystore)
        base = [keytool, "-keystore", location, "-storepass", JAVA_STOREPASS]
        mine = _run([*base, "-list", "-alias", self.nickname]).returncode == 0
        if add:
            command = [keytool, "-importcert", "-noprompt", "-trustcacerts", "-alias", self.nickname, "-file",
                       str(self.ca_dir / "ca.pem"), "-keystore", location, "-storepass", JAVA_STOREPASS]
            if mine:
                return Step("java", location, "present", "already installed", [command])
            if self._in_java(base):
                # ca-certificates-java imported it from the system store (under its own alias).
                return Step("java", location, "present", "trusted through the system store")
            if dry_run:
                if DEBIAN_JAVA_HOOK.exists():
                    return Step("java", location, "would add", "through the system store (ca-certificates-java)")
                return Step("java", location, "would add", "", [command])
            return _ran(Step("java", location, "added", "", [command]))
        # Debian's hook names the system store's copy after our anchor file; it came in with our
        # install and does not leave when the anchor does, so it goes here.
        aliases = [alias for alias in (self.nickname, f"debian:{self.nickname}.pem", f"debian:{self.nickname}.crt")
                   if alias == self.nickname and mine or alias != self.nickname
                   and _run([*base, "-list", "-alias", alias]).returncode == 0]
        if not aliases:
            return Step("java", location, "absent", "not installed")
        commands = [[*base, "-delete", "-alias", alias] for alias in aliases]
        if dry_run:
            return Step("java", location, "would remove", ", ".join(aliases), commands)
        return _ran(Step("java", location, "removed", ", ".join(aliases), commands))

    def _in_java(self, base: list[str]) -> bool:
        listed = _run([*base, "-list"])
        colons = ":".join(self.fingerprint[i:i + 2] for i in range(0, len(self.fingerprint), 2)).upper()
        return listed.returncode == 0 and colons in listed.stdout.upper()


def _run(command: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(command, 127, "", str(exc))


def _ran(step: Step) -> Step:
    """Run the step's commands; the step becomes "failed" with the tool's own words if one fails."""
    for command in step.commands:
        done = _run(command)
        if done.returncode != 0:
            words = " ".join((done.stderr or done.stdout).split())[:200]
            step.result, step.detail = "failed", f"{Path(command[0]).name} exited {done.returncode}: {words}"
            break
    return step


def _raise_for_failures(steps: list[Step], verb: str) -> None:
    failed = [step for step in steps if step.result == "failed"]
    if failed:
        first = failed[0]
        error = TrustStoreError(f"{verb} failed for {len(failed)} store(s)", f"{first.store} {first.location}: "
                                f"{first.detail}", "fix that store (often: run as root) and run it again")
        error.steps = steps
        raise error
