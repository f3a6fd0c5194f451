from aami_tui.start import main

raise SystemExit(main())
