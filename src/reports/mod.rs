//! Renderers of the progress sheet: csv, xlsx and html, all drawn from the same sheet JSON so
//! every format shows the same numbers.
