from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from governance.checkpoints import checkpoint_dir, checkpoints_load
from ledger.selectors import audit_chain_verify, audit_unchained_count
from ledger.services import audit_chain_extend


class Command(BaseCommand):
    help = (
        "Chain what has committed, then verify the whole audit hash chain: seq continuity, prev links "
        "and every event's hash; "
        "and the chain against the nodes' signed checkpoints of its head (deleted newest events)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--chunk-size", type=int, default=5000, help="rows fetched per round trip")
        parser.add_argument(
            "--show-head",
            action="store_true",
            help="also print the last event's hash: record it elsewhere to detect a truncated tail later",
        )
        parser.add_argument(
            "--checkpoints",
            action="append",
            metavar="DIR",
            help="a folder holding nodes' audit-checkpoint-<node>.json files (repeatable; "
            "default: CHRONOSX_CHECKPOINT_DIR, else CHRONOSX_NODE_KEY_DIR, where each node writes its own)",
        )

    def handle(self, *args, chunk_size, show_head, checkpoints, **options):
        if checkpoints is None:
            directories = [checkpoint_dir()]
        else:
            directories = [Path(d) for d in checkpoints]
            missing = [str(d) for d in directories if not d.is_dir()]
            if missing:
                raise CommandError(f"no such checkpoint folder: {', '.join(missing)}")
        # Link whatever has committed and is not chained yet (the sequencer's own step, which it
        # runs every second anyway): every committed event is then proved, not just the chained.
        while audit_chain_extend():
            pass
        # The checkpoints first: the chain only grows, so the walk then holds every seq they cover.
        verified, problems = checkpoints_load(directories=directories)
        report = audit_chain_verify(chunk_size=chunk_size, checkpoints=[c.chain_checkpoint for c in verified])
        failures = []
        if report.outcome == "broken":
            failures.append(
                f"audit chain broken at seq {report.broken_seq} (kind {report.broken_kind}): {report.reason}; "
                f"{report.count} events before it verify"
            )
        elif not report.ok:
            failures.append(f"audit chain {report.outcome}: {report.reason}")
        failures += problems
        if failures:
            raise CommandError("\n".join(failures))
        self.stdout.write(f"audit chain OK: {report.count} events")
        unchained = audit_unchained_count()
        if unchained:
            self.stdout.write(f"not yet chained: {unchained} events of transactions still open")
        if report.checkpoint is not None:
            self.stdout.write(
                f"checkpoints: {report.checkpoints_matched} verified, "
                f"newest seq {report.checkpoint.seq} ({report.checkpoint.label})"
            )
        if show_head:
            self.stdout.write(f"head {report.head_hash}")
