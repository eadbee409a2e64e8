"""Issue, list and revoke API keys from the shell (the admin does the same under "API keys")."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from handlers.models import ApiKey


class Command(BaseCommand):
    help = "Manage the API keys clients exchange at POST /api/token: create, list, revoke."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="action", required=True, metavar="{create,list,revoke}")
        create = commands.add_parser("create", help="Issue a key; prints its id and secret once.")
        create.add_argument("--user", required=True, help="Username the key acts as (with its permissions).")
        create.add_argument("--name", required=True, help="What uses the key, e.g. 'orders-service worker'.")
        listing = commands.add_parser("list", help="List keys, newest first.")
        listing.add_argument("--user", help="Only the keys of this username.")
        revoke = commands.add_parser("revoke", help="Revoke a key; tokens issued for it stop working at once.")
        revoke.add_argument("key_id", help="The key id, as printed by create or list.")

    def handle(self, *args, action: str, **options) -> None:
        {"create": self.create, "list": self.list, "revoke": self.revoke}[action](**options)

    def create(self, *, user: str, name: str, **options) -> None:
        account = get_user_model().objects.filter(username=user).first()
        if account is None:
            raise CommandError(f"No user named {user!r}. Create one first (manage.py createsuperuser).")
        if not account.is_active:
            raise CommandError(f"User {user!r} is inactive: a key for them would be refused.")
        if not name.strip():
            raise CommandError("--name must not be empty: say what will use the key.")
        key, secret = ApiKey.issue(account, name.strip())
        self.stdout.write(f"Key id: {key.key_id}")
        self.stdout.write(f"Secret: {secret}")
        self.stdout.write("Keep the secret now: only its hash is stored and it cannot be shown again.")

    def list(self, *, user: str | None, **options) -> None:
        keys = ApiKey.objects.select_related("user").order_by("-created_at", "-id")
        if user:
            keys = keys.filter(user__username=user)
        rows = [
            (key.key_id, key.user.get_username(), _when(key.created_at), _when(key.last_used_at),
             "revoked " + _when(key.revoked_at) if key.revoked_at else "active", key.name)
            for key in keys
        ]
        if not rows:
            self.stdout.write("No API keys.")
            return
        header = ("KEY ID", "USER", "CREATED", "LAST USED", "STATUS", "NAME")
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
        for row in [header, *rows]:
            padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            self.stdout.write("  ".join([*padded, row[-1]]))

    def revoke(self, *, key_id: str, **options) -> None:
        key = ApiKey.objects.filter(key_id=key_id).first()
        if key is None:
            raise CommandError(f"No API key with id {key_id!r}; `manage.py apikey list` shows them.")
        if key.revoke():
            self.stdout.write(f"Revoked API key {key.key_id} ({key.name}).")
        else:
            self.stdout.write(f"API key {key.key_id} ({key.name}) was already revoked.")


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"
