# Django's `en` formats, with seconds and the zone: "Nov. 30, 2026, 08:15:42 WIB".
DATETIME_FORMAT = "N j, Y, H:i:s T"
SHORT_DATETIME_FORMAT = "m/d/Y H:i:s"
TIME_FORMAT = "H:i:s"
