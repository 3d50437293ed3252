from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "halobestie.accounts"
    label = "accounts"
    verbose_name = "Akun"
