; NSIS installer for localopen on Windows: Start-menu entry, desktop shortcut (optional), uninstaller.
;   makensis /DVERSION=0.1.0 /DSOURCE_DIR=..\..\build\dist\localopen /DOUT_FILE=..\..\build\localopen-setup.exe localopen.nsi
; SOURCE_DIR is the PyInstaller one-dir bundle (installers/localopen.spec).

Unicode true
!ifndef VERSION
  !define VERSION "0.1.0"
!endif
!ifndef SOURCE_DIR
  !error "pass /DSOURCE_DIR=<the PyInstaller bundle folder>"
!endif
!ifndef OUT_FILE
  !define OUT_FILE "localopen-${VERSION}-setup.exe"
!endif

!include "MUI2.nsh"

Name "localopen ${VERSION}"
OutFile "${OUT_FILE}"
InstallDir "$LOCALAPPDATA\Programs\localopen"
InstallDirRegKey HKCU "Software\localopen" "InstallDir"
RequestExecutionLevel user
SetCompressor /SOLID lzma

!define MUI_ABORTWARNING
!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!define MUI_FINISHPAGE_RUN "$INSTDIR\localopen.exe"
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

Section "localopen" SecMain
  SectionIn RO
  SetOutPath "$INSTDIR"
  File /r "${SOURCE_DIR}\*.*"
  WriteRegStr HKCU "Software\localopen" "InstallDir" "$INSTDIR"
  WriteUninstaller "$INSTDIR\Uninstall.exe"
  CreateDirectory "$SMPROGRAMS\localopen"
  CreateShortcut "$SMPROGRAMS\localopen\localopen.lnk" "$INSTDIR\localopen.exe"
  CreateShortcut "$SMPROGRAMS\localopen\Uninstall localopen.lnk" "$INSTDIR\Uninstall.exe"
  ; Add/Remove Programs entry (per user, no administrator rights needed)
  WriteRegStr HKCU "Software\Microsoft\Windows\CurrentVersion\Uninstall\localopen" "DisplayName" "localopen"
  WriteRegStr HKCU "Software\Microsoft\Windows\CurrentVersion\Uninstall\localopen" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "Software\Microsoft\Windows\CurrentVersion\Uninstall\localopen" "Publisher" "localopen developers"
  WriteRegStr HKCU "Software\Microsoft\Windows\CurrentVersion\Uninstall\localopen" "DisplayIcon" "$INSTDIR\localopen.exe"
  WriteRegStr HKCU "Software\Microsoft\Windows\CurrentVersion\Uninstall\localopen" "UninstallString" '"$INSTDIR\Uninstall.exe"'
  WriteRegDWORD HKCU "Software\Microsoft\Windows\CurrentVersion\Uninstall\localopen" "NoModify" 1
  WriteRegDWORD HKCU "Software\Microsoft\Windows\CurrentVersion\Uninstall\localopen" "NoRepair" 1
SectionEnd

Section /o "Desktop shortcut" SecDesktop
  CreateShortcut "$DESKTOP\localopen.lnk" "$INSTDIR\localopen.exe"
SectionEnd

Section "Uninstall"
  Delete "$SMPROGRAMS\localopen\localopen.lnk"
  Delete "$SMPROGRAMS\localopen\Uninstall localopen.lnk"
  RMDir "$SMPROGRAMS\localopen"
  Delete "$DESKTOP\localopen.lnk"
  ; Models and chats live in the user's data folder and are kept: they are the user's.
  RMDir /r "$INSTDIR"
  DeleteRegKey HKCU "Software\Microsoft\Windows\CurrentVersion\Uninstall\localopen"
  DeleteRegKey HKCU "Software\localopen"
SectionEnd
