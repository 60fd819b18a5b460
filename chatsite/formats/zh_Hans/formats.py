# Simplified Chinese beside Django's own formats: numbers grouped by thousands with
# a comma (128,000, as Chinese chat apps and price lists write them, not Django's
# ungrouped 128000), months without a leading zero (3月5日), 24-hour times.
THOUSAND_SEPARATOR = ","
NUMBER_GROUPING = 3
DATE_FORMAT = "Y年n月j日"
MONTH_DAY_FORMAT = "n月j日"
TIME_FORMAT = "H:i"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
