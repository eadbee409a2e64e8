"""Make sure someone can log in to a fresh installation, and say how."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the first superuser (admin, random password) if there is none, and print how to log in."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/admin/", help="Admin URL to print.")
        parser.add_argument("--username", default="admin")

    def handle(self, *args, url: str, username: str, **options):
        users = get_user_model().objects
        self.stdout.write(f"Eventhub admin: {url}")
        if users.filter(is_superuser=True).exists():
            self.stdout.write(
                "Log in with your superuser. Forgot the password? "
                "`.venv/bin/python manage.py changepassword <username>`."
            )
            return
        password = secrets.token_urlsafe(12)
        users.create_superuser(username=username, email="", password=password)
        self.stdout.write(f"Created superuser {username!r} with password {password!r}. Change it in the admin.")
