# Environment of every Hadoop command (sourced by bin/hadoop); inv hadoop.prepare sets its
# variables for each role.
