from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from riskops.core.auth import DEMO_PASSWORD_SUFFIX
from riskops.core.roles import ADMIN, INTEGRATION, ROLES, STAFF_ROLES, ensure_roles


class Command(BaseCommand):
    help = (
        "Create one demo operator per role (username = role, password = role + '-demo', refused at login when DEBUG "
        "is off) and the lending app's API user, and print the logins and the API token."
    )

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="allow it with DEBUG off (never in production)")

    def handle(self, *args, force: bool = False, **options):
        if not settings.DEBUG and not force:
            raise CommandError("refusing to create demo operators with DEBUG off; pass --force if you really mean it")
        ensure_roles()
        User = get_user_model()
        self.stdout.write("Demo operators (username / password):")
        for role in ROLES:
            user, created = User.objects.get_or_create(username=role)
            if created:
                user.set_password(role + DEMO_PASSWORD_SUFFIX)
            user.is_staff = role in STAFF_ROLES
            user.is_superuser = role == ADMIN
            user.save()
            user.groups.set([Group.objects.get(name=role)])
            self.stdout.write(f"  {role:<16} {role + DEMO_PASSWORD_SUFFIX}")
        # The lending app's API user: no password, a token for POST /api/v1/appeals/.
        app, _created = User.objects.get_or_create(username="lending-app")
        app.set_unusable_password()
        app.save()
        app.groups.set([Group.objects.get(name=INTEGRATION)])
        token, _created = Token.objects.get_or_create(user=app)
        self.stdout.write(f"Lending-app API token (Authorization: Token ...): {token.key}")
