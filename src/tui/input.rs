//! Keys to commands. Pure: which key does what in which mode, nothing else.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::state::View;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Quit,
    /// `Esc`: close what is open (help, detail), else quit.
    Back,
    NextView,
    PrevView,
    ShowView(View),
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    ToggleDetail,
    CycleSort,
    ReverseSort,
    StartFilter,
    FilterInput(char),
    FilterBackspace,
    FilterErase,
    FilterAccept,
    FilterCancel,
    TogglePause,
    Reset,
    Export,
    ToggleHelp,
    /// `F`: the crash report, once the target died of a fatal error.
    ToggleFatal,
}

/// Which keys are live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Typing a filter after `/`.
    Editing,
    /// The help overlay.
    Help,
}

pub fn command(key: KeyEvent, mode: Mode) -> Option<Command> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('C')) {
        return Some(Command::Quit);
    }
    let moved = match key.code {
        KeyCode::Up => Some(Command::Up),
        KeyCode::Down => Some(Command::Down),
        KeyCode::PageUp => Some(Command::PageUp),
        KeyCode::PageDown => Some(Command::PageDown),
        KeyCode::Home => Some(Command::Home),
        KeyCode::End => Some(Command::End),
        _ => None,
    };
    match mode {
        Mode::Help => match key.code {
            KeyCode::Char('q') | KeyCode::Char('?') | KeyCode::Esc | KeyCode::Enter => {
                Some(Command::ToggleHelp)
            }
            _ => None,
        },
        Mode::Editing => moved.or(match key.code {
            KeyCode::Esc => Some(Command::FilterCancel),
            KeyCode::Enter => Some(Command::FilterAccept),
            KeyCode::Backspace => Some(Command::FilterBackspace),
            KeyCode::Char('u') if ctrl => Some(Command::FilterErase),
            KeyCode::Char(c) if !ctrl => Some(Command::FilterInput(c)),
            _ => None,
        }),
        Mode::Normal => moved.or(match key.code {
            KeyCode::Char('q') => Some(Command::Quit),
            KeyCode::Esc => Some(Command::Back),
            KeyCode::Tab => Some(Command::NextView),
            KeyCode::BackTab => Some(Command::PrevView),
            KeyCode::Char('1') => Some(Command::ShowView(View::Callers)),
            KeyCode::Char('2') => Some(Command::ShowView(View::Maps)),
            KeyCode::Char('5') => Some(Command::ShowView(View::Labels)),
            KeyCode::Char('3') => Some(Command::ShowView(View::Events)),
            KeyCode::Char('4') => Some(Command::ShowView(View::Alerts)),
            KeyCode::Char('k') => Some(Command::Up),
            KeyCode::Char('j') => Some(Command::Down),
            KeyCode::Char('g') => Some(Command::Home),
            KeyCode::Char('G') => Some(Command::End),
            KeyCode::Enter => Some(Command::ToggleDetail),
            KeyCode::Char('s') => Some(Command::CycleSort),
            KeyCode::Char('r') => Some(Command::ReverseSort),
            KeyCode::Char('/') => Some(Command::StartFilter),
            KeyCode::Char(' ') => Some(Command::TogglePause),
            KeyCode::Char('c') => Some(Command::Reset),
            KeyCode::Char('e') => Some(Command::Export),
            KeyCode::Char('?') | KeyCode::F(1) => Some(Command::ToggleHelp),
            KeyCode::Char('F') => Some(Command::ToggleFatal),
            _ => None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn ctrl_c_quits_in_every_mode() {
        let k = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        for mode in [Mode::Normal, Mode::Editing, Mode::Help] {
            assert_eq!(command(k, mode), Some(Command::Quit));
        }
    }

    #[test]
    fn letters_type_into_the_filter_while_editing() {
        assert_eq!(
            command(key(KeyCode::Char('q')), Mode::Normal),
            Some(Command::Quit)
        );
        assert_eq!(
            command(key(KeyCode::Char('q')), Mode::Editing),
            Some(Command::FilterInput('q'))
        );
        assert_eq!(
            command(key(KeyCode::Esc), Mode::Editing),
            Some(Command::FilterCancel)
        );
        assert_eq!(
            command(key(KeyCode::Down), Mode::Editing),
            Some(Command::Down)
        );
    }

    #[test]
    fn vi_and_arrow_keys_move() {
        assert_eq!(
            command(key(KeyCode::Char('j')), Mode::Normal),
            Some(Command::Down)
        );
        assert_eq!(command(key(KeyCode::Up), Mode::Normal), Some(Command::Up));
        assert_eq!(
            command(key(KeyCode::PageDown), Mode::Normal),
            Some(Command::PageDown)
        );
        assert_eq!(
            command(key(KeyCode::Tab), Mode::Normal),
            Some(Command::NextView)
        );
        assert_eq!(
            command(key(KeyCode::Char('3')), Mode::Normal),
            Some(Command::ShowView(View::Events))
        );
        assert_eq!(
            command(key(KeyCode::Char('4')), Mode::Normal),
            Some(Command::ShowView(View::Alerts))
        );
    }
}
