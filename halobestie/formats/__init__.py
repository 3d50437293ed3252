"""Date and time formats for the control center (FORMAT_MODULE_PATH): Django's own per language,
with seconds and the zone (WIB for Asia/Jakarta) wherever a time is shown."""
