"""Bring every stored address to its canonical form (accounts.email_address).

Until now addresses were only lower-cased, and logins matched them with iexact, so
look-alike spellings (``uſer@`` next to ``user@``) could sit side by side and answer
to one login. If two rows reach the same canonical form, this migration stops and
names them: it never merges accounts. Resolve them by hand (deactivate or rename the
impostor), then migrate again.
"""

from collections import defaultdict

from django.db import migrations

from accounts.email_address import canonical_email


class CanonicalEmailCollision(RuntimeError):
    pass


def canonicalise_emails(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    AccountToken = apps.get_model("accounts", "AccountToken")
    by_form = defaultdict(list)
    for pk, email in User.objects.order_by("date_joined").values_list("pk", "email").iterator():
        by_form[canonical_email(email)].append((pk, email))
    collisions = {form: rows for form, rows in by_form.items() if len(rows) > 1}
    if collisions:
        lines = [
            f"  {form}: " + ", ".join(f"user {pk} ({email!r})" for pk, email in rows)
            for form, rows in sorted(collisions.items())
        ]
        raise CanonicalEmailCollision(
            "accounts 0004: these accounts share one canonical email address. Nothing was changed. "
            "Deactivate or rename all but the real owner of each address, then migrate again:\n"
            + "\n".join(lines)
        )
    for form, [(pk, email)] in by_form.items():
        if email != form:
            User.objects.filter(pk=pk).update(email=form)
    pending = AccountToken.objects.exclude(new_email="").values_list("pk", "new_email").iterator()
    for pk, new_email in pending:
        if canonical_email(new_email) != new_email:
            AccountToken.objects.filter(pk=pk).update(new_email=canonical_email(new_email))


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0003_staff_action_permissions"),
    ]

    operations = [
        migrations.RunPython(canonicalise_emails, migrations.RunPython.noop, elidable=False),
    ]
