# The app's English date formats (the rest are Django's): compact, 24-hour, as the
# chat apps people know show them. Used by `date:"MONTH_DAY_FORMAT"` and the like.
DATE_FORMAT = "M j, Y"
MONTH_DAY_FORMAT = "M j"
TIME_FORMAT = "H:i"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
