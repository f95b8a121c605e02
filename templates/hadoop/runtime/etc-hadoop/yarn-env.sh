# Environment of YARN's daemons (sourced by bin/yarn); inv hadoop.prepare sets its variables.
