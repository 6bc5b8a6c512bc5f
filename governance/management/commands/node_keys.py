import getpass

from django.core.management.base import BaseCommand, CommandError

from governance.keys import NodeKeyError, key_path, node_key_generate, node_key_rotate
from governance.models import Node, NodeKey


class Command(BaseCommand):
    help = (
        "MPC node key pairs in CHRONOSX_NODE_KEY_DIR. `generate [--node NAME]` creates the missing key files "
        "(keeps existing ones) and registers their public keys; `rotate --node NAME` replaces a node's key "
        "(new key id; the old key is retired but still verifies the votes it signed); `list` prints the "
        "registered public keys."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["generate", "rotate", "list"])
        parser.add_argument("--node", choices=Node.values, help="one node (default for generate and list: all three)")
        parser.add_argument("--user", default=None, help="the operator; defaults to the OS user")

    def handle(self, *args, action, node, user, **options):
        actor = f"operator:{user or getpass.getuser()}"
        try:
            if action == "generate":
                for name in [node] if node else Node.values:
                    signer, created = node_key_generate(node=name, actor=actor)
                    word = "generated" if created else "already present"
                    self.stdout.write(f"{name}: {word}: key id {signer.key_id} public key {signer.public_key_b64} file {key_path(name)}")
            elif action == "rotate":
                if not node:
                    raise CommandError("rotate needs --node NAME (one of: " + ", ".join(Node.values) + ")")
                signer = node_key_rotate(node=node, actor=actor)
                self.stdout.write(f"{node}: rotated: new key id {signer.key_id} public key {signer.public_key_b64} file {key_path(node)}")
                self.stdout.write(f"the {node} node signs with the new key from its next vote")
            else:
                rows = NodeKey.objects.order_by("node", "created_at")
                if node:
                    rows = rows.filter(node=node)
                for row in rows:
                    state = "active" if row.active else "retired"
                    self.stdout.write(f"{row.node} {row.key_id} {row.public_key} {state} {row.created_at.isoformat()}")
        except NodeKeyError as exc:
            raise CommandError(str(exc))
