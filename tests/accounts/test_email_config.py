"""EMAIL_URL selects the backend; Amazon SES through anymail starts in production."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.foundation.test_configuration import ROOT, good_production_env

CHECK_AND_PRINT_BACKEND = (
    "import django; django.setup()\n"
    "from django.conf import settings\n"
    "from django.core.management import call_command\n"
    "call_command('check', deploy=True, fail_level='WARNING')\n"
    "print(settings.EMAIL_BACKEND)\n"
)


@pytest.mark.integration
@pytest.mark.slow
def test_amazon_ses_through_anymail_passes_the_production_checks():
    pytest.importorskip("boto3", reason="boto3 comes with requirements/prod.txt")
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
        **good_production_env(), "DJANGO_SETTINGS_MODULE": "dashtam.settings",
        "EMAIL_URL": "anymail://amazon_ses", "AWS_DEFAULT_REGION": "eu-west-1",
    }
    result = subprocess.run(  # fixed argv, test only
        [sys.executable, "-c", CHECK_AND_PRINT_BACKEND], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert result.stdout.strip().splitlines()[-1] == "anymail.backends.amazon_ses.EmailBackend"
