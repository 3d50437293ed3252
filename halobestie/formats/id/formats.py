# Django's `id` formats, with seconds and the zone: "30 Nov 2026, 08.15.42 WIB".
DATETIME_FORMAT = "j M Y, H.i.s T"
SHORT_DATETIME_FORMAT = "d-m-Y H.i.s"
TIME_FORMAT = "H.i.s"
