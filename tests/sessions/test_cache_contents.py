"""What the revocation cache keeps: never a password hash."""

import pickle

import pytest
from django.core.cache import cache

from sessions_mgmt import revocation
from sessions_mgmt.services import session_start


@pytest.mark.django_db
def test_the_cached_user_row_has_no_password_hash_and_requests_still_work(api_client, user, password, rf):
    issued = session_start(user=user, request=rf.get("/"))
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.access}")
    assert api_client.get("/api/v1/auth/me").status_code == 200

    entry = cache.get(revocation.user_key(user.pk))
    assert entry is not None, "the user row was not cached"
    cached_user = entry[1]
    assert "password" in cached_user.get_deferred_fields()
    assert user.password.encode() not in pickle.dumps(entry)

    # Served from the cache, and the password still checks out against the database.
    assert api_client.get("/api/v1/auth/me").status_code == 200
    response = api_client.post("/api/v1/auth/change-password",
                               {"current_password": password, "new_password": "Another-Horse-7-Battery"},
                               format="json")
    assert response.status_code == 200, response.content
    user.refresh_from_db()
    assert user.check_password("Another-Horse-7-Battery")
