from assetvault.cli import main

raise SystemExit(main())
