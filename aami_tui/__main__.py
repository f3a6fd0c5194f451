from aami_tui.cli import main

raise SystemExit(main())
