"""An imported Bestie logs in through the real endpoint with the hash node's bcrypt made."""

import bcrypt
from django.contrib.auth.hashers import identify_hasher

from halobestie.accounts.models import User
from halobestie.legacy.importer import LegacyImport
from halobestie.legacy.sample import BESTIE_PASSWORD

PHONE = "+6281100000001"


def _login(api, password):
    return api.post("/api/v1/auth/mitra/login", {"phone": PHONE, "password": password}, format="json")


def test_it_logs_an_imported_bestie_in_with_the_bcrypt_hash_and_upgrades_it(api, clean_export_dir):
    LegacyImport(clean_export_dir).run()
    imported = User.objects.get(phone=PHONE).password
    assert bcrypt.checkpw(BESTIE_PASSWORD.encode(), imported.removeprefix("bcrypt$").encode())

    wrong = _login(api, "bukan-ini")
    assert wrong.status_code == 401
    assert User.objects.get(phone=PHONE).password == imported

    first = _login(api, BESTIE_PASSWORD)
    upgraded = User.objects.get(phone=PHONE)
    assert first.status_code == 200
    assert first.json()["user"]["phone"] == PHONE
    assert identify_hasher(upgraded.password).algorithm == "pbkdf2_sha256"
    assert upgraded.check_password(BESTIE_PASSWORD)

    second = _login(api, BESTIE_PASSWORD)
    assert second.status_code == 200
    assert User.objects.get(phone=PHONE).password == upgraded.password


def test_it_checks_a_2a_hash_of_older_node_bcrypt_as_it_is(api, make_mitra):
    mitra = make_mitra(phone=PHONE)
    old_hash = bcrypt.hashpw(BESTIE_PASSWORD.encode(), b"$2a$04$" + bcrypt.gensalt(4)[7:]).decode()
    User.objects.filter(pk=mitra.user_id).update(password="bcrypt$" + old_hash)

    response = _login(api, BESTIE_PASSWORD)

    assert response.status_code == 200
    assert identify_hasher(User.objects.get(pk=mitra.user_id).password).algorithm == "pbkdf2_sha256"
